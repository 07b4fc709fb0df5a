"""Reliability, round four (issue #38), row 11: a run folder (or its ``checkpoints/`` or
``token_cache/``) that cannot be written ended in a ``PermissionError``/``OSError`` traceback,
and an extended run trained its steps before failing to write their checkpoint (the steps
were lost). Now training checks each folder it writes before the first step, and a file the
system still refuses later is one line from the ``h2q`` command.

Root writes whatever a file's mode says, so the real-folder tests make the folder read-only
with a read-only bind mount (root only; skipped elsewhere); the same refusal is also raised
by a stand-in for the system call, which runs for every user.
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from h2q_lib import cli
from h2q_lib.core import run_folder as runs
from h2q_lib.core.run_folder import RunFolderError
from h2q_lib.training.profiles import RuntimeConfig, get_profile
from h2q_lib.training.trainer import train

TINY = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                   batch_size=4, grad_accum=1, steps=4, warmup=1, eval_every=2,
                   eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0)
LONGER = dataclasses.replace(TINY, steps=6)  # extends the finished run by two steps
FOLDERS = [".", "checkpoints", "token_cache"]


@pytest.fixture(scope="module")
def runtime(data_dir) -> RuntimeConfig:
    return RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32",
                         attention="sdpa")


@pytest.fixture(scope="module")
def base(tmp_path_factory, runtime) -> Path:
    """A finished tiny run of 4 steps."""
    run = tmp_path_factory.mktemp("base") / "run"
    train(TINY, run, runtime)
    return run


@pytest.fixture
def finished(base, tmp_path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != runs.LOCK}


@pytest.fixture
def read_only():
    """Make a folder read-only for root too (a read-only bind mount of itself)."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        if shutil.which("mount") is None or subprocess.run(
                ["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
            pytest.skip("a folder cannot be bind-mounted here (needs root)")
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_read_only_folder_is_one_line_before_any_step(finished, runtime, read_only, folder):
    """row 11, on a real read-only folder: the extended run trained steps 5 and 6, then the
    checkpoint write raised ``OSError`` (the steps were lost); a fresh cache write did too."""
    before = snapshot(finished)
    read_only(finished / folder)
    with pytest.raises(RunFolderError, match="cannot be written") as e:
        train(LONGER, finished, runtime, extend=True)
    message = str(e.value)
    assert "\n" not in message and "nothing was trained" in message
    assert ("it refuses" in message) if folder == "." else (f"its {folder}/ folder" in message)
    assert snapshot(finished) == before


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_that_refuses_files_is_one_line_for_every_user(finished, runtime, monkeypatch,
                                                                folder):
    """row 11, with the refusal a non-root user meets (``EACCES``), raised for that folder."""
    refused = (finished / folder).resolve()
    real = tempfile.TemporaryFile

    def temporary_file(*args, **kwargs):
        if Path(kwargs.get("dir", ".")).resolve() == refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(refused))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match=r"cannot be written: .*\(Permission denied\)"):
        train(LONGER, finished, runtime, extend=True)
    assert snapshot(finished) == before


def test_the_command_names_a_file_the_system_refuses_in_one_line(monkeypatch, capsys, tmp_path):
    """row 11, the last line of defence: a refusal after the checks is one line, rc 2."""
    def refuse(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "results.json"))

    monkeypatch.setattr("h2q_lib.bench.benchmark.run_benchmark", refuse)
    assert cli.main(["bench", "--out", str(tmp_path / "results.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.json: Permission denied" in err


def test_other_os_errors_are_not_disguised(monkeypatch):
    """Only the system's refusals are shortened; anything else keeps its traceback."""
    def broken(**kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("h2q_lib.bench.benchmark.run_benchmark", broken)
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["bench"])
