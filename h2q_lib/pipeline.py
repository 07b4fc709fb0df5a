"""Run notebooks 01-05 with papermill for one profile, then build the book.

The profile is expanded here and in notebooks 01-02 only: 02 trains the run folder, and every
later notebook reads that folder (``run_dir``). Paths handed to the notebooks are relative to
the folder they run in, so executed notebooks never record a machine's paths. Each executed
notebook records the fingerprint of the library code it ran with (``provenance``), which the
test suite compares with the library at HEAD. Re-running resumes: training continues from its
latest checkpoint (or returns at once when finished), token caches and evaluations are
reused when nothing they depend on changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import nbformat

from .data import DATA_DIR_ENV
from .errors import ConfigError
from .hardware import PRECISIONS
from .profiles import get_profile_spec
from .provenance import library_fingerprint, notebook_modules

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = (
    "01_data_prep", "02_train", "03_evaluate", "04_tokenizer_caveats", "05_performance",
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


def run_pipeline(profile: str, data_dir: str | None = None, runs_dir: str = "runs",
                 out_dir: str = "book/notebooks", build_book: bool = True,
                 restart: bool = False, notebooks: tuple[str, ...] = NOTEBOOKS,
                 precision: str = "auto") -> list[Path]:
    """Execute ``notebooks`` in order for ``profile``; returns the executed notebooks.

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
    out, run_root = Path(out_dir), Path(runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_root.mkdir(parents=True, exist_ok=True)
    params = {**notebook_parameters(profile, out, run_root, data_dir), "restart": restart,
              "precision": precision}
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if os.environ.get(DATA_DIR_ENV):  # the notebooks run in another folder
        os.environ[DATA_DIR_ENV] = str(Path(os.environ[DATA_DIR_ENV]).resolve())
    done = []
    for name in notebooks:
        source, target = ROOT / "notebooks" / f"{name}.ipynb", out / f"{name}.ipynb"
        print(f"papermill {name} (profile {profile}) -> {target}", flush=True)
        declared = papermill.inspect_notebook(str(source))  # pass only what it declares
        papermill.execute_notebook(
            str(source), str(target), parameters={k: v for k, v in params.items()
                                                   if k in declared},
            cwd=str(out), progress_bar=False, kernel_name="python3",
        )
        record_execution(target, source)
        done.append(target)
    if build_book:
        jb = Path(sys.executable).parent / "jupyter-book"
        subprocess.run([str(jb), "build", "book", "-W", "--keep-going"], cwd=ROOT, check=True)
    return done
