"""Reliability, round four (issue #38), the rows about commands: ``restart`` from inside a run
folder or over a file it cannot remove, ``h2q evaluate --out`` naming a file it would
overwrite, Ctrl-C while torch imports, and ``h2q bench`` / ``h2q pipeline`` values that
ended in tracebacks.

Each test names its row of the issue's table and failed on the code the issue was filed
against.
"""

from __future__ import annotations

import builtins
import json
import shutil
import sys
from pathlib import Path

import pytest
import tomllib

import h2q_lib
from h2q_lib.cli import main as cli_main
from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import RunFolderError
from h2q_lib.evaluation.checkpoint_scores import check_scores_file
from h2q_lib.training.profiles import RuntimeConfig, get_profile
from h2q_lib.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TINY = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                   batch_size=4, grad_accum=1, steps=2, warmup=1, eval_every=2,
                   eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0)


@pytest.fixture(scope="module")
def base(tmp_path_factory, data_dir) -> Path:
    run = tmp_path_factory.mktemp("base") / "run"
    train(TINY, run, RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu",
                                   precision="fp32", attention="sdpa"))
    return run


@pytest.fixture
def finished(base, tmp_path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != runs.LOCK}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("h2q: error: ") and "\n" not in err, err
    return err


def test_restart_from_inside_the_run_folder_removes_nothing(finished, monkeypatch):
    """row 12: ``--restart --run-dir .`` removed everything, then failed on ``rmdir('.')``."""
    before = snapshot(finished)
    for inside in (finished, finished / "checkpoints"):
        monkeypatch.chdir(inside)
        with pytest.raises(RunFolderError, match="is the current folder or holds it") as e:
            run_cleanup.restart_run_folder(".." if inside.name == "checkpoints" else ".")
        assert "\n" not in str(e.value)
    assert snapshot(finished) == before


def test_a_file_restart_cannot_remove_leaves_a_recognised_run_folder(finished, monkeypatch):
    """row 12: an immutable file inside: the marker and the recipe were gone, the folder no
    longer a run folder, and the error a traceback."""
    unlink = Path.unlink

    def immutable_config(self, *args, **kwargs):
        if self.name == "summary.json":
            raise PermissionError(1, "Operation not permitted", str(self))
        return unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", immutable_config)
    with pytest.raises(RunFolderError, match=r"summary\.json.*could not be removed.*keeps its "
                                             r"\.h2q-run marker") as e:
        run_cleanup.restart_run_folder(finished)
    assert "\n" not in str(e.value)
    assert runs.is_run_folder(finished) and (finished / "summary.json").exists()


@pytest.mark.parametrize("target", ["final_model.safetensors", "config.json", "log.jsonl"])
def test_evaluate_out_never_names_a_file_it_would_overwrite(finished, target, data_dir,
                                                            capsys):
    """row 14: ``h2q evaluate --out`` equal to the weights or ``config.json`` overwrote it."""
    before = snapshot(finished)
    rc = cli_main(["evaluate", str(finished / "final_model.safetensors"), "--out",
                   str(finished / target), "--data-dir", str(data_dir), "--max-documents", "1"])
    assert rc == 2
    assert "--out=" in one_error_line(capsys)
    assert snapshot(finished) == before


def test_earlier_scores_and_a_new_file_may_take_the_scores(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    earlier = tmp_path / "scores.json"
    earlier.write_text(json.dumps({"lm-eval": {"test": {}}}))
    check_scores_file(earlier, weights)
    check_scores_file(tmp_path / "new.json", weights)
    other = tmp_path / "package.json"
    other.write_text(json.dumps({"name": "mine"}))
    with pytest.raises(ConfigError, match="out=.*something else"):
        check_scores_file(other, weights)


def test_ctrl_c_while_torch_imports_ends_in_one_line(monkeypatch, capsys):
    """row 17: Ctrl-C in the first second of ``h2q train`` printed a 28-39-line traceback
    (it came while ``h2q_lib.cli`` imported torch, before ``main`` could catch it)."""
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "h2q_lib.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "h2q_lib.cli")
    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert h2q_lib.main(["train"]) == 130
    assert capsys.readouterr().err == "h2q: interrupted\n"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["h2q"] == "h2q_lib:main"  # the command enters through the guard


@pytest.mark.parametrize("flag", ["--batch-size", "--grad-accum"])
def test_bench_refuses_a_batch_no_machine_holds(flag, capsys):
    """row 18: ``h2q bench --batch-size 1e12`` ended in a traceback."""
    assert cli_main(["bench", flag, "1000000000000"]) == 2
    assert "1000000000000" in one_error_line(capsys)


def test_pipeline_refuses_a_file_as_its_runs_folder(tmp_path, capsys):
    """row 18: ``h2q pipeline --runs-dir FILE`` ended in a traceback."""
    file = tmp_path / "runs"
    file.write_text("not a folder\n")
    assert cli_main(["pipeline", "--profile", "smoke", "--runs-dir", str(file),
                     "--out-dir", str(tmp_path / "out"), "--no-book"]) == 2
    assert "runs_dir=" in one_error_line(capsys) and file.read_text() == "not a folder\n"


def test_export_refuses_a_run_folder_holding_another_recipes_weights(finished, tmp_path,
                                                                     data_dir, capsys):
    """row 8: ``h2q export`` exported another recipe's final weights under the run's name
    (``h2q evaluate`` refused the same file)."""
    other = tmp_path / "other"
    train(get_profile("smoke", **{**TINY.to_dict(), "seed": TINY.seed + 1}), other,
          RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32",
                        attention="sdpa"))
    shutil.copy(other / "final_model.safetensors", finished / "final_model.safetensors")
    assert cli_main(["export", str(finished), str(tmp_path / "export")]) == 2
    err = one_error_line(capsys)
    assert "not this run's final model" in err and "nothing was exported" in err
    assert not (tmp_path / "export").exists()
