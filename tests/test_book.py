"""The book as a product: thin source notebooks, executed notebooks that are not stale, the
pipeline's bookkeeping, and nbval's tolerant comparison."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbval_tolerance import numbers_agree, split_numbers, texts_agree

from h2q_lib.book import pipeline
from h2q_lib.core import provenance

ROOT = pipeline.ROOT
SOURCES = [ROOT / "notebooks" / f"{name}.ipynb" for name in pipeline.NOTEBOOKS]
BOOK = [ROOT / "book" / "notebooks" / f"{name}.ipynb" for name in pipeline.NOTEBOOKS]
MAX_CELL_LINES = 12
# code that computes belongs in the library, where a test checks it
FORBIDDEN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor,
             ast.While, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def tags(cell):
    return cell.metadata.get("tags", [])


# --- source notebooks -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_source_notebooks_only_call_the_library(path):
    cells = code_cells(path)
    params = [c for c in cells if "parameters" in tags(c)]
    assert len(params) == 1 and "remove-cell" in tags(params[0])
    for cell in cells:
        assert not cell.get("outputs"), "source notebooks are stored without outputs"
        tree = ast.parse(cell.source)
        bad = sorted({type(n).__name__ for n in ast.walk(tree) if isinstance(n, FORBIDDEN)})
        assert not bad, f"{path.stem}: {bad} in\n{cell.source}"
        if "remove-cell" not in tags(cell):  # the hidden setup cell holds the imports
            assert len(cell.source.splitlines()) <= MAX_CELL_LINES, cell.source
    setup = [c for c in cells if "import" in c.source and "parameters" not in tags(c)]
    assert setup and all("remove-cell" in tags(c) for c in setup), "setup code is hidden"
    provenance_cells = [c for c in cells if c.source.startswith("provenance(")]
    assert len(provenance_cells) == 1 and "remove-input" in tags(provenance_cells[0])
    # no code on the page; the provenance is the last cell, folded
    assert all({"remove-input", "remove-cell"} & set(tags(c)) for c in cells)
    assert cells[-1] is provenance_cells[0] and "hide-output" in tags(cells[-1])


def test_only_the_first_two_notebooks_expand_a_profile():
    for path in SOURCES[2:]:
        source = "\n".join(c.source for c in code_cells(path))
        assert "get_profile" not in source and "notebook_configs" not in source, path.stem
        assert "run_dir" in source


def test_thinness_check_catches_a_loop():
    tree = ast.parse("for x in range(3):\n    print(x)")
    assert any(isinstance(n, FORBIDDEN) for n in ast.walk(tree))


# --- executed notebooks: not stale ------------------------------------------------------------


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.stem)
def test_book_notebooks_ran_with_the_library_and_code_of_head(path):
    nb = nbformat.read(path, as_version=4)
    record = nb.metadata.get(pipeline.FINGERPRINT_KEY)
    assert record, f"{path.name} has no library fingerprint: re-run `make pipeline`"
    source = ROOT / "notebooks" / path.name
    modules = provenance.notebook_modules(source)
    assert tuple(record["library_modules"]) == modules
    assert record["library_fingerprint"] == provenance.library_fingerprint(modules), (
        f"{path.name} was executed with another version of {', '.join(modules)}: "
        "re-execute it (make pipeline PROFILE=prefix)")
    executed = [c.source for c in nb.cells if c.cell_type == "code"
                and "injected-parameters" not in tags(c)]
    assert executed == [c.source for c in code_cells(source)], "notebook code changed"
    assert not [o for c in nb.cells for o in c.get("outputs", [])
                if o.get("output_type") == "error"]


def test_fingerprint_ignores_docstrings_and_comments_but_not_code(tmp_path):
    (tmp_path / "a.py").write_text('"""Doc."""\nX = 1  # a comment\n\n\ndef f():\n    """D."""\n'
                                   "    return X\n")
    before = provenance.library_fingerprint(("a",), tmp_path)
    (tmp_path / "a.py").write_text('"""Other doc."""\nX = 1\n\n\ndef f():\n    return X\n')
    assert provenance.library_fingerprint(("a",), tmp_path) == before
    (tmp_path / "a.py").write_text('"""Doc."""\nX = 2\n\n\ndef f():\n    return X\n')
    assert provenance.library_fingerprint(("a",), tmp_path) != before


def test_a_notebook_executed_with_an_older_library_is_found(tmp_path, monkeypatch):
    path = tmp_path / "01_data_prep.ipynb"
    nb = nbformat.read(SOURCES[0], as_version=4)
    modules = provenance.notebook_modules(SOURCES[0])
    nb.metadata[pipeline.FINGERPRINT_KEY] = {
        "library_modules": list(modules),
        "library_fingerprint": provenance.library_fingerprint(modules)}
    nbformat.write(nb, path)
    real = provenance.library_fingerprint
    monkeypatch.setattr(provenance, "library_fingerprint",
                        lambda mods=None, package_dir=provenance.PACKAGE_DIR: "0" * 16)
    with pytest.raises(AssertionError, match="another version"):
        test_book_notebooks_ran_with_the_library_and_code_of_head(path)
    monkeypatch.setattr(provenance, "library_fingerprint", real)


def test_notebook_modules_follow_the_library_imports():
    modules = provenance.notebook_modules(SOURCES[4])  # the performance chapter
    assert {"bench.performance", "book.tables", "claims.completion_report"} <= set(modules)
    assert "bench.benchmark" not in modules and "evaluation.documents" not in set(
        provenance.module_closure({"bench.performance"}))


# --- the pipeline -----------------------------------------------------------------------------


def test_pipeline_gives_notebooks_relative_paths_and_the_profile_settings(tmp_path):
    out, runs = tmp_path / "book" / "notebooks", tmp_path / "runs"
    params = pipeline.notebook_parameters("prefix", out, runs, str(tmp_path / "data"))
    assert params["run_dir"] == "../../runs/prefix"
    assert params["experiment_dir"] == "../../runs/prefix-tokenizers"
    assert params["data_dir"] == "../../data"
    assert params["experiment"]["n_layer"] == 4 and params["eval_documents"] is None
    assert params["run_dirs"]["micro-batch"] == "../../runs/prefix-micro-batch"
    assert params["control_dirs"]["seed 1338"] == "../../runs/control-seed"
    assert params["preregistered_dirs"]["N1 no warm-up"] == "../../runs/no-warmup"
    assert params["runs_root"] == "../../runs"
    assert not any(str(v).startswith("/") for v in params.values())


def test_pipeline_refuses_bad_input_with_the_path_as_typed(tmp_path):
    with pytest.raises(Exception, match="profile='nope'"):
        pipeline.run_pipeline("nope", out_dir=str(tmp_path), build_book=False)
    with pytest.raises(Exception, match="data_dir='no-such-dir'"):
        pipeline.run_pipeline("smoke", data_dir="no-such-dir", out_dir=str(tmp_path),
                              build_book=False)


def test_pipeline_refuses_a_held_run_folder_in_one_line_before_any_notebook(tmp_path):
    from h2q_lib.core import run_folder as runs

    folder = tmp_path / "runs" / "smoke"
    folder.mkdir(parents=True)
    out = tmp_path / "out"
    with runs.RunLock(folder):
        with pytest.raises(runs.RunFolderError) as e:
            pipeline.run_pipeline("smoke", runs_dir=str(tmp_path / "runs"), out_dir=str(out),
                                  build_book=False)
    assert "\n" not in str(e.value)
    assert not list(out.glob("*.ipynb"))


def test_only_the_committed_profile_writes_the_committed_book_notebooks(tmp_path):
    committed = ROOT / "book" / "notebooks"
    assert pipeline.book_out_dir("prefix", None) == committed
    smoke = pipeline.book_out_dir("smoke", str(committed))
    assert smoke != committed and smoke.name == "notebooks" and "_build" in smoke.parts
    assert pipeline.book_out_dir("smoke", str(tmp_path)) == tmp_path


def is_git_checkout(folder) -> bool:
    return shutil.which("git") is not None and subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=folder, capture_output=True,
        text=True).stdout.strip() == "true"


def fresh_clone(dest):
    """``dest`` holding what a fresh clone of this working tree holds, committed: its tracked
    and not-ignored files (uncommitted edits included); without git, the tree less the
    ignored build outputs, and no repository (returns False)."""
    if not is_git_checkout(ROOT):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "_build", ".cache", "checkpoints", "token_cache", "*.egg-info"))
        return False
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the tree is left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for command in (["init", "-q"], ["add", "-A"],
                    ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "clone"]):
        subprocess.run(["git", *command], cwd=dest, env=env, check=True, capture_output=True)
    return True


@pytest.mark.slow
def test_the_smoke_pipeline_builds_its_book_and_leaves_a_fresh_clone_clean(tmp_path, data_dir):
    """`make pipeline PROFILE=smoke` on a fresh clone: every profile's pipeline builds the book
    (-W), its pages saying in words what a short run did not reach; the committed book
    notebooks are not touched; and `git status --porcelain` is empty afterwards (the smoke
    run folders and book are where git does not list them)."""
    clone = tmp_path / "clone"
    is_repo = fresh_clone(clone)
    before = {p.name: p.read_bytes() for p in (clone / "book" / "notebooks").glob("*.ipynb")}
    # the clone's library, the clone's folders: what `make pipeline PROFILE=smoke` runs there
    env = {**os.environ, "PYTHONPATH": str(clone), "H2Q_DATA_DIR": str(data_dir)}
    subprocess.run([sys.executable, "-m", "h2q_lib.cli", "pipeline", "--profile", "smoke",
                    "--precision", "fp32"], cwd=clone, env=env, check=True)
    assert (clone / "_build" / "book-smoke" / "book" / "_build" / "html" / "intro.html").is_file()
    assert (clone / "runs" / "smoke" / "summary.json").is_file()
    after = {p.name: p.read_bytes() for p in (clone / "book" / "notebooks").glob("*.ipynb")}
    assert after == before
    if is_repo:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                                cwd=clone, check=True, capture_output=True, text=True).stdout
        assert status == "", f"make pipeline PROFILE=smoke left in git status:\n{status}"


def test_record_execution_hides_injected_parameters_and_records_the_fingerprint(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("y = 2")])
    nb.metadata["papermill"] = {"input_path": str(ROOT / "notebooks" / "a.ipynb"),
                                "output_path": "book/notebooks/a.ipynb"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    pipeline.record_execution(path, SOURCES[4])
    done = nbformat.read(path, as_version=4)
    assert done.metadata["papermill"] == {"input_path": "notebooks/a.ipynb",
                                          "output_path": "book/notebooks/a.ipynb"}
    assert done.cells[0].metadata["tags"] == ["injected-parameters", "remove-cell"]
    record = done.metadata[pipeline.FINGERPRINT_KEY]
    assert record["library_fingerprint"] == provenance.library_fingerprint(
        tuple(record["library_modules"]))


def test_git_revision_marks_uncommitted_library_files():
    revision = provenance.git_revision()
    if revision == "unknown":
        pytest.skip("not a git checkout")
    base = revision.removesuffix("+dirty")
    probe = ROOT / "h2q_lib" / "_untracked_probe.py"
    probe.write_text("")
    try:
        assert provenance.git_revision() == base + "+dirty"
    finally:
        probe.unlink()


# --- nbval at a stated tolerance --------------------------------------------------------------


def test_integers_are_exact_and_floats_agree_within_the_tolerance():
    assert texts_agree("tokens 1,120,496 loss 2.4031", "tokens 1,120,496 loss 2.4035")
    assert not texts_agree("tokens 1,120,496", "tokens 1,120,497")
    assert not texts_agree("loss 2.4031", "loss 2.5031")  # 4% apart
    assert not texts_agree("loss 2.4031 (val)", "loss 2.4031 (train)")
    assert texts_agree("a  2.40\n b", "a 2.40 b")  # column widths do not count
    assert numbers_agree("0.0001", "0.0002")  # one unit of the last printed digit
    assert not numbers_agree("12", "12.5")
    assert split_numbers("wikitext-103-raw-v1 step_000060.pt 3.5%")[1] == ["103", "3.5%"]


def test_sanitizer_masks_the_revision_but_not_digits_inside_numbers():
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tests" / "regression" / "sanitize.cfg")
    rules = [(cfg[s]["regex"], cfg[s]["replace"]) for s in cfg.sections()]

    def sanitize(text):
        for regex, replace in rules:
            text = re.sub(regex, replace, text)
        return text

    assert sanitize("2.123456789012345") == "2.123456789012345"
    assert sanitize("git revision      0123456789ab+dirty") == "git revision      GIT-REVISION"
    assert sanitize("<th>git revision</th>\n      <td>0123456789ab</td>") == \
        "<th>git revision</th>\n      <td>GIT-REVISION</td>"


@pytest.mark.slow
def test_nbval_fails_when_a_loss_moves_beyond_the_tolerance(tmp_path):
    """Change a result by 5% in a stored output: nbval with the tolerance must fail."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(2.4031, 1120496)",
                                                                   execution_count=1)])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="2.4033 1120496\n")]
    close = tmp_path / "close.ipynb"
    nbformat.write(nb, close)
    nb.cells[0].outputs[0]["text"] = "2.5233 1120496\n"
    far = tmp_path / "far.ipynb"
    nbformat.write(nb, far)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    run = lambda p: subprocess.run(  # noqa: E731
        [os.sys.executable, "-m", "pytest", "-q", "--nbval", "-p", "no:cacheprovider",
         "--confcutdir", str(tmp_path), "-c", os.devnull, "-p", "nbval_tolerance",
         str(p)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run(close).returncode == 0
    assert run(far).returncode == 1


def _smoke_losses(tmp_path, name, seed, env=None):
    """Validation losses of a short fp32 smoke run in a fresh process (``env`` for its kernels)."""
    run = tmp_path / name
    flags = ["--profile", "smoke", "--steps", "60", "--precision", "fp32", "--quiet", "true",
             "--seed", str(seed), "--sample-tokens", "0", "--run-dir", str(run)]
    done = subprocess.run([os.sys.executable, "-m", "h2q_lib.cli", "train", *flags],
                          env={**os.environ, **(env or {})}, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in log if r["val_loss"] is not None]


@pytest.mark.slow
def test_the_tolerance_absorbs_other_kernels_and_catches_another_seed(tmp_path):
    """The smoke run in fp32 with AVX-512 kernels and with AVX2 kernels (as on a CPU without
    AVX-512) agrees within the tolerance; the same run with another seed does not."""
    from nbval_tolerance import REL_TOL

    base = _smoke_losses(tmp_path, "base", 1337)
    avx2 = _smoke_losses(tmp_path, "avx2", 1337, {"ATEN_CPU_CAPABILITY": "avx2",
                                                  "ONEDNN_MAX_CPU_ISA": "AVX2"})
    seed = _smoke_losses(tmp_path, "seed", 1338)
    kernels = max(abs(a - b) / b for a, b in zip(base, avx2, strict=True))
    seeds = max(abs(a - b) / b for a, b in zip(base, seed, strict=True))
    assert kernels < REL_TOL / 10 < REL_TOL < seeds, (kernels, seeds)


def test_regression_notebooks_are_the_smoke_profile_in_fp32():
    for name in pipeline.NOTEBOOKS[:2]:
        nb = json.loads((ROOT / "tests" / "regression" / f"{name}.ipynb").read_text())
        injected = next(c for c in nb["cells"]
                        if "injected-parameters" in c["metadata"].get("tags", []))
        source = "".join(injected["source"])
        assert 'profile = "smoke"' in source
        if name == "02_train":
            assert 'precision = "fp32"' in source
