"""Run notebooks 01-05 with papermill for one profile, then build the book.

Paths handed to the notebooks are relative to the folder they run in, so executed
notebooks never record a machine's paths. Re-running resumes: training continues from
its latest checkpoint (or returns at once when finished) and token caches are reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from .data import DATA_DIR_ENV
from .errors import ConfigError
from .profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = (
    "01_data_prep", "02_train", "03_evaluate", "04_tokenizer_caveats", "05_performance",
)


def notebook_parameters(profile: str, out_dir: Path, runs_dir: Path,
                        data_dir: str | None, restart: bool) -> dict:
    """The parameters every notebook gets: the profile name and relative folders."""
    rel = lambda p: os.path.relpath(Path(p).resolve(), out_dir.resolve())  # noqa: E731
    return {
        "profile": profile,
        "data_dir": rel(data_dir) if data_dir else None,
        "run_dir": rel(runs_dir / profile),
        "experiment_dir": rel(runs_dir / f"{profile}-tokenizers"),
        "cache_dir": rel(runs_dir / "token_cache"),
        "benchmarks_dir": rel(ROOT / "benchmarks"),
        "restart": restart,
    }


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected cell ``remove-cell`` so the HTML does not show it.

    Papermill's record of the input and output paths is made relative to the repository,
    so that an executed notebook names no folder of the machine that ran it.
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
    nbformat.write(nb, path)


def run_pipeline(profile: str, data_dir: str | None = None, runs_dir: str = "runs",
                 out_dir: str = "book/notebooks", build_book: bool = True,
                 restart: bool = False, notebooks: tuple[str, ...] = NOTEBOOKS) -> list[Path]:
    """Execute ``notebooks`` in order for ``profile``; returns the executed notebooks."""
    import papermill

    if profile not in PROFILES:
        raise ConfigError("profile", profile, "one of " + ", ".join(PROFILES))
    out, runs = Path(out_dir), Path(runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    params = notebook_parameters(profile, out, runs, data_dir, restart)
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
        hide_injected_parameters(target)
        done.append(target)
    if build_book:
        jb = Path(sys.executable).parent / "jupyter-book"
        subprocess.run([str(jb), "build", "book", "-W", "--keep-going"], cwd=ROOT, check=True)
    return done
