"""Run the chapter notebooks with papermill for one profile, then build the book.

The profile is expanded here and in notebooks 01-02 only: 02 trains the run folder, and every
later notebook reads that folder (``run_dir``). Paths handed to the notebooks are relative to
the folder they run in, so executed notebooks never record a machine's paths. Each executed
notebook records the fingerprint of the library code it ran with (``provenance``), which the
test suite compares with the library at HEAD. Re-running resumes: training continues from its
latest checkpoint (or returns at once when finished), token caches and evaluations are
reused when nothing they depend on changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import nbformat

from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError, H2QError
from h2q_lib.core.provenance import library_fingerprint, notebook_modules
from h2q_lib.data.wikitext import DATA_DIR_ENV
from h2q_lib.training.hardware import PRECISIONS
from h2q_lib.training.profiles import get_profile_spec

ROOT = Path(__file__).resolve().parents[2]  # the repository
# Numbered in reading order, executed in this order: the readings chapter (03) shows the scores
# that the evaluation chapter (04) stores in the run folder, so it runs after 04.
NOTEBOOKS = (
    "01_data_prep", "02_train", "04_evaluate", "05_tokenizer_caveats", "06_performance",
    "03_readings",
)
FINGERPRINT_KEY = "h2q"


def notebook_parameters(profile: str, out_dir: Path, runs_dir: Path,
                        data_dir: str | None) -> dict:
    """Every parameter a notebook may declare; each notebook gets those it declares."""
    spec = get_profile_spec(profile)
    rel = lambda p: os.path.relpath(Path(p).resolve(), out_dir.resolve())  # noqa: E731
    return {
        "profile": profile,
        "data_dir": rel(data_dir) if data_dir else None,
        "run_dir": rel(runs_dir / profile),
        "experiment_dir": rel(runs_dir / f"{profile}-tokenizers"),
        "experiment": asdict(spec.experiment),
        "eval_documents": spec.eval_documents,
        "benchmarks_dir": rel(ROOT / "benchmarks"),
        "run_dirs": {"stated": rel(runs_dir / profile),
                     **{name: rel(runs_dir / folder)
                        for name, folder in spec.reading_runs.items()}},
        "control_dirs": {name: rel(runs_dir / folder)
                         for name, folder in spec.control_runs.items()},
        "preregistered_dirs": {name: rel(runs_dir / folder)
                               for name, folder in spec.preregistered_runs.items()},
        "runs_root": rel(runs_dir),
    }


def record_execution(path: Path, source: Path) -> None:
    """Tidy an executed notebook and record what it ran with.

    Papermill's injected-parameters cell is tagged ``remove-cell`` (the HTML does not show
    it); papermill's input/output paths are made relative to the repository (no machine
    paths); the metadata gets the library modules the notebook uses and their fingerprint.
    """
    nb = nbformat.read(path, as_version=4)
    record = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if record.get(key) and os.path.isabs(record[key]):
            record[key] = os.path.relpath(record[key], ROOT)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    modules = notebook_modules(source)
    nb.metadata[FINGERPRINT_KEY] = {"library_modules": list(modules),
                                    "library_fingerprint": library_fingerprint(modules)}
    nbformat.write(nb, path)


def check_data_dir(data_dir: str | None) -> None:
    """One line, with the path as typed, when ``data_dir`` is given but is not a folder."""
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise ConfigError("data_dir", data_dir, "a folder laid out like "
                          "<folder>/<config>/wiki.<split>.<raw|tokens>")


def check_run_folders_free(runs_dir: Path, profile: str) -> None:
    """One line (``runs.RunFolderError``) when another process holds the profile's run folder
    or its experiment's: refused before any notebook runs, not 40 lines of a notebook's
    traceback later."""
    for folder in (runs_dir / profile, runs_dir / f"{profile}-tokenizers"):
        if folder.is_dir():
            with runs.RunLock(folder):
                pass


class PipelineInterrupted(H2QError):
    """SIGINT or SIGTERM stopped the pipeline; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux's /proc; none where it is missing)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the name in parentheses may hold spaces: the parent id follows its last ")"
            if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.parent.name))
    return found


@contextlib.contextmanager
def forward_interrupts() -> Iterator[dict]:
    """While notebooks run, SIGINT and SIGTERM reach the kernel as an interrupt (SIGINT).

    jupyter starts each kernel in its own session, so neither Ctrl-C at the terminal nor a
    SIGTERM to ``h2q pipeline`` reached it: SIGTERM killed the pipeline and left the trainer
    without its step checkpoint, SIGINT ended in nbclient's DeadKernelError traceback. Here
    the pipeline stays alive, the kernel's trainer finishes its step and saves it
    (``train``'s own handler), the cell fails, and ``run_pipeline`` ends in one line.
    Yields ``{"signum": the first signal or None}``.
    """
    state: dict = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum, frame):
        state["signum"] = state["signum"] or signum
        for pid in _children(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)

    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _interrupted(state: dict, name: str, error: BaseException | None) -> PipelineInterrupted:
    signum = state["signum"]
    said = ""
    if error is not None:
        lines = str(getattr(error, "evalue", "") or "").strip().splitlines()
        said = f": {lines[0][:300]}" if lines else ""
    return PipelineInterrupted(f"interrupted by {signal.Signals(signum).name} in notebook "
                               f"{name}{said}", signum)


BOOK = ROOT / "book"
BOOK_PROFILE = "prefix"  # the committed book's notebooks are this profile's


def book_out_dir(profile: str, out_dir: str | os.PathLike | None) -> Path:
    """Where ``profile``'s executed notebooks go: ``out_dir``, except that only the committed
    book's profile writes into ``book/notebooks``; another profile asked to write there (the
    default) goes to ``_build/book-<profile>/book/notebooks`` instead, so that a smoke run never
    overwrites the committed book."""
    committed = BOOK / "notebooks"
    out = Path(out_dir) if out_dir is not None else committed
    if profile != BOOK_PROFILE and out.resolve() == committed.resolve():
        out = ROOT / "_build" / f"book-{profile}" / "book" / "notebooks"
        print(f"profile {profile}: the notebooks go to {os.path.relpath(out, ROOT)} "
              f"(book/notebooks holds the committed {BOOK_PROFILE} book)", flush=True)
    return out


def build_book_from(out: Path) -> Path:
    """Build the book with the notebooks in ``out``; returns the HTML folder.

    ``book/notebooks`` builds the committed book into ``_build/html``. Any other folder named
    ``notebooks`` gets the book's pages beside it (its parent becomes a book) and is built
    into that parent's ``_build/html``, with the repository's ``_config.yml``.
    """
    jb = Path(sys.executable).parent / "jupyter-book"
    if out.resolve() == (BOOK / "notebooks").resolve():
        subprocess.run([str(jb), "build", "book", "-W", "--keep-going"], cwd=ROOT, check=True)
        return ROOT / "_build" / "html"
    if out.name != "notebooks":
        raise ConfigError("out_dir", str(out), "a folder named notebooks (the book's pages go "
                          "beside it) to build the book")
    book = out.parent
    for page in BOOK.iterdir():
        if page.is_file():
            shutil.copy(page, book / page.name)
    subprocess.run([str(jb), "build", str(book), "-W", "--keep-going", "--config",
                    str(ROOT / "_config.yml"), "--path-output", str(book)], cwd=ROOT, check=True)
    return book / "_build" / "html"


def execute_notebook(source: Path, target: Path, parameters: dict, cwd: Path) -> None:
    """papermill on one notebook (the seam ``run_pipeline``'s interrupts are tested at)."""
    import papermill

    papermill.execute_notebook(str(source), str(target), parameters=parameters, cwd=str(cwd),
                               progress_bar=False, kernel_name="python3")


def run_pipeline(profile: str, data_dir: str | None = None, runs_dir: str = "runs",
                 out_dir: str | None = None, build_book: bool = True,
                 restart: bool = False, notebooks: tuple[str, ...] = NOTEBOOKS,
                 precision: str = "auto") -> list[Path]:
    """Execute ``notebooks`` in order for ``profile``; returns the executed notebooks.

    The notebooks go to ``out_dir`` (``book_out_dir``: a profile other than the committed
    book's never writes into ``book/notebooks``); with ``build_book`` the book is built from
    them (``build_book_from``).

    ``restart`` reaches the notebooks that declare it (01: the run folder, 04: the
    experiment's), which remove only folders the project made; ``precision`` reaches those
    that train or evaluate (``auto``: the hardware rule; the regression notebooks use fp32,
    so that every CPU computes the same numbers up to its kernels' rounding).
    """
    import papermill

    get_profile_spec(profile)
    check_data_dir(data_dir)
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, "one of " + ", ".join(PRECISIONS))
    for name in notebooks:
        if name not in NOTEBOOKS:
            raise ConfigError("notebooks", name, "names from " + ", ".join(NOTEBOOKS))
    out, run_root = book_out_dir(profile, out_dir), Path(runs_dir)
    for param, folder in (("out_dir", out), ("runs_dir", run_root)):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(param, os.fspath(folder), "a folder (this is a file)")
    out.mkdir(parents=True, exist_ok=True)
    run_root.mkdir(parents=True, exist_ok=True)
    check_run_folders_free(run_root, profile)
    params = {**notebook_parameters(profile, out, run_root, data_dir), "restart": restart,
              "precision": precision}
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if os.environ.get(DATA_DIR_ENV):  # the notebooks run in another folder
        os.environ[DATA_DIR_ENV] = str(Path(os.environ[DATA_DIR_ENV]).resolve())
    done = []
    with forward_interrupts() as stops:
        for name in notebooks:
            source, target = ROOT / "notebooks" / f"{name}.ipynb", out / f"{name}.ipynb"
            print(f"papermill {name} (profile {profile}) -> {target}", flush=True)
            declared = papermill.inspect_notebook(str(source))  # pass only what it declares
            try:
                execute_notebook(source, target, {k: v for k, v in params.items()
                                                  if k in declared}, out)
            except Exception as e:
                if stops["signum"] is not None:
                    raise _interrupted(stops, name, e) from None
                raise
            if stops["signum"] is not None:
                raise _interrupted(stops, name, None)
            record_execution(target, source)
            done.append(target)
    if build_book:
        build_book_from(out)
    return done
