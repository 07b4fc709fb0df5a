"""Reliability (issue #17): what a careless or hostile user can do to a run, and what must hold.

Each section is one row of the issue's table; every test would have failed on the behaviour
the issue observed. Nothing is lost in any case: the previous good checkpoint, the log and the
user's files survive. Most tests copy one tiny finished run (``base``) instead of training
their own; ``interrupted`` is that run as a crash after step 6 was logged, before its
checkpoint, leaves it (resume: from ``step_000004.pt``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from h2q_lib.cli import main as cli_main
from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import (
    CheckpointError,
    ConfigError,
    DataUnavailableError,
    H2QError,
    TrainingDivergedError,
)
from h2q_lib.core.run_folder import RunFolderError, RunLock
from h2q_lib.data import token_cache as tc
from h2q_lib.data.tokenizers import tokenizer_from_dict
from h2q_lib.data.wikitext import load_split
from h2q_lib.evaluation.metrics import perplexity, safe_exp
from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training import checkpoint as ckpt
from h2q_lib.training import recipe_identity
from h2q_lib.training import trainer as train_mod
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig, get_profile
from h2q_lib.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
DATA_CONFIG = "wikitext-2-raw-v1"  # the smoke profile's text
TINY = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                   batch_size=4, grad_accum=1, steps=6, warmup=1, eval_every=2,
                   eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=8)
EVERY_STEP = dataclasses.replace(TINY, ckpt_every=1, eval_every=1)


@pytest.fixture(scope="module")
def runtime(data_dir) -> RuntimeConfig:
    return RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32",
                         attention="sdpa")


@pytest.fixture(scope="module")
def base(tmp_path_factory, runtime) -> Path:
    """A finished tiny run: 6 steps, checkpoints at steps 2, 4, 6, evaluations at 2, 4, 6."""
    run = tmp_path_factory.mktemp("base") / "run"
    train(TINY, run, runtime)
    return run


@pytest.fixture
def cache(base) -> Path:
    """The base run's token caches, to be read (never written) by fresh runs."""
    return base / "token_cache"


@pytest.fixture
def finished(base, tmp_path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "run"))


@pytest.fixture
def interrupted(finished) -> Path:
    """The base run as a crash after step 6 was logged, before its checkpoint, leaves it."""
    for name in ("checkpoints/step_000006.pt", "final_model.safetensors", "summary.json"):
        (finished / name).unlink()
    return finished


# --- helpers ---------------------------------------------------------------------------------


def losses(run: Path) -> list[tuple]:
    return [(r["step"], r["train_loss"], r["val_loss"])
            for r in runs.read_jsonl(run / "log.jsonl")]


def logged_steps(run: Path) -> list[int]:
    return [r["step"] for r in runs.read_jsonl(run / "log.jsonl")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def one_line(e: pytest.ExceptionInfo | BaseException) -> str:
    msg = str(e.value if isinstance(e, pytest.ExceptionInfo) else e)
    assert msg and "\n" not in msg, msg
    return msg


def all_finite(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    return True


def cli_argv(cfg: TrainConfig, run: Path | str, data_dir: Path | str, *extra: str) -> list[str]:
    """``h2q train`` with every recipe field of ``cfg`` given as a flag (later flags win)."""
    argv = ["train", "--profile", "smoke", "--run-dir", str(run), "--data-dir", str(data_dir),
            "--quiet", "true", "--device", "cpu", "--precision", "fp32"]
    for name, value in cfg.to_dict().items():
        argv += ["--" + name.replace("_", "-"), "none" if value is None else str(value)]
    return argv + list(extra)


# --- row 1: flipped bytes or bits in a checkpoint's tensor data ------------------------------


def tensor_regions(path: Path) -> list[tuple[int, int]]:
    """``(start, end)`` byte ranges of the tensor data in a ``.pt`` or ``.safetensors`` file."""
    raw = path.read_bytes()
    if path.suffix == ".safetensors":
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        return [(8 + n + a, 8 + n + b) for k, v in header.items() if k != "__metadata__"
                for a, b in [v["data_offsets"]] if b > a]
    regions = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if "/data/" not in info.filename or info.file_size == 0:
                continue
            assert info.compress_type == zipfile.ZIP_STORED
            local = raw[info.header_offset : info.header_offset + 30]
            start = (info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                     + int.from_bytes(local[28:30], "little"))
            regions.append((start, start + info.file_size))
    return regions


def flip(path: Path, how: str, region: tuple[int, int] | None = None) -> None:
    """Flip one low mantissa bit (``bit``) or overwrite 16 bytes (``bytes``) mid-tensor."""
    raw = bytearray(path.read_bytes())
    start, end = region or max(tensor_regions(path), key=lambda r: r[1] - r[0])
    at = start + (end - start) // 2 // 4 * 4  # the low byte of a float32
    if how == "bit":
        raw[at] ^= 0x01
    else:
        raw[at : min(at + 16, end)] = b"\xff" * (min(at + 16, end) - at)
    path.write_bytes(bytes(raw))


def load(path: Path):
    return ckpt.read_training(path) if path.suffix == ".pt" else ckpt.load_weights(path)


@pytest.mark.parametrize("how", ["bit", "bytes"])
@pytest.mark.parametrize("name", ["checkpoints/step_000006.pt", "checkpoints/best.pt",
                                  "final_model.safetensors"])
def test_flipped_tensor_data_is_named_when_loading(base, tmp_path, name, how):
    path = tmp_path / Path(name).name
    shutil.copyfile(base / name, path)
    load(path)  # intact: loads
    flip(path, how)
    with pytest.raises(CheckpointError, match=path.name) as e:
        load(path)
    assert "corrupt" in one_line(e)
    with pytest.raises(CheckpointError, match=path.name):
        ckpt.load_model(path)


@pytest.mark.parametrize("name", ["checkpoints/step_000004.pt", "final_model.safetensors"])
def test_a_single_bit_in_any_tensor_is_detected(base, tmp_path, name):
    path = tmp_path / Path(name).name
    regions = tensor_regions(base / name)
    assert len(regions) >= 8  # weights (and optimizer state) found
    for region in regions:
        shutil.copyfile(base / name, path)
        flip(path, "bit", region)
        with pytest.raises(CheckpointError, match=path.name):
            load(path)


def test_resume_falls_back_past_a_corrupt_checkpoint_and_matches_an_uninterrupted_run(
        finished, base, runtime, capsys):
    flip(finished / "checkpoints" / "step_000006.pt", "bit")
    capsys.readouterr()
    train(TINY, finished, runtime)
    out = capsys.readouterr().out
    assert "step_000006.pt is corrupted" in out and "falling back" in out
    assert "resuming from step_000004.pt" in out
    assert losses(finished) == losses(base)
    assert ckpt.read_training(finished / "checkpoints" / "step_000006.pt")["meta"]["step"] == 6


# --- row 2: two writers on one run folder ----------------------------------------------------

HOLDER = """import sys
from h2q_lib.core.run_folder import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_writer_is_refused_naming_the_holders_pid(interrupted, runtime):
    before = snapshot(interrupted)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(interrupted)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError) as e:  # the lock is non-blocking: no waiting
            train(TINY, interrupted, runtime)
        assert f"pid {holder.pid}" in one_line(e) and str(interrupted) in str(e.value)
        after = snapshot(interrupted)
        assert {k: v for k, v in after.items() if k != ".lock"} == \
            {k: v for k, v in before.items() if k != ".lock"}
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    with RunLock(interrupted):  # released when its holder ends
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(interrupted, base, runtime):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (interrupted / ".lock").write_text(dead.stdout)
    train(TINY, interrupted, runtime)
    assert losses(interrupted) == losses(base)
    with RunLock(interrupted):
        assert (interrupted / ".lock").read_text().strip() == str(os.getpid())


def test_temporary_files_have_unique_names(tmp_path):
    target = tmp_path / "config.json"
    names = []

    def outer(tmp: Path) -> None:
        names.append(tmp.name)
        tmp.write_text("outer")
        runs.atomic_write(target, inner)  # a second writer of the same file meanwhile

    def inner(tmp: Path) -> None:
        names.append(tmp.name)
        tmp.write_text("inner")

    runs.atomic_write(target, outer)
    assert len(set(names)) == 2
    assert target.read_text() == "outer" and tmp_files(tmp_path) == []


def test_atomic_writes_give_files_the_usual_permissions(base):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "checkpoints/best.pt", "final_model.safetensors"):
        assert (base / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# --- row 3: divergence -----------------------------------------------------------------------


def test_a_huge_lr_stops_before_anything_is_written(tmp_path, runtime, cache):
    cfg = dataclasses.replace(EVERY_STEP, lr=1e39)
    for _ in range(2):  # a rerun does not resume anything non-finite either
        with pytest.raises(TrainingDivergedError, match="step 1") as e:
            train(cfg, tmp_path / "run", runtime, cache_dir=cache)
        one_line(e)
        assert list((tmp_path / "run" / "checkpoints").iterdir()) == []
        assert logged_steps(tmp_path / "run") == []
        assert not (tmp_path / "run" / "final_model.safetensors").exists()


def _weights_explode_at_step_3(monkeypatch):
    real = train_mod.lr_at
    monkeypatch.setattr(train_mod, "lr_at",
                        lambda step, cfg: 1e39 if step >= 2 else real(step, cfg))


def _training_loss_nan_at_step_3(monkeypatch):
    real, calls = GPT.forward, []

    def forward(self, idx, targets=None):
        out = real(self, idx, targets)
        if self.training and targets is not None:
            calls.append(1)
            if len(calls) >= 3:
                return out[0], out[1] * math.nan
        return out

    monkeypatch.setattr(GPT, "forward", forward)


def _validation_loss_nan_at_step_3(monkeypatch):
    real, calls = train_mod.estimate_val_loss, []

    def estimate(*args, **kwargs):
        calls.append(1)
        return math.nan if len(calls) >= 3 else real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "estimate_val_loss", estimate)


@pytest.mark.parametrize("inject", [_weights_explode_at_step_3, _training_loss_nan_at_step_3,
                                    _validation_loss_nan_at_step_3],
                         ids=["weights", "training loss", "validation loss"])
def test_divergence_keeps_the_last_good_checkpoint_and_best(tmp_path, runtime, cache,
                                                             monkeypatch, capsys, inject):
    run, cfg = tmp_path / "run", dataclasses.replace(EVERY_STEP, steps=4)
    inject(monkeypatch)
    with pytest.raises(TrainingDivergedError, match="at step 3") as e:
        train(cfg, run, runtime, cache_dir=cache)
    one_line(e)
    assert [p.name for p in ckpt.step_checkpoints(run / "checkpoints")] == \
        ["step_000002.pt", "step_000001.pt"]
    for name in ("step_000002.pt", "best.pt"):
        payload = ckpt.read_training(run / "checkpoints" / name)
        assert payload["meta"]["step"] <= 2
        assert all_finite(payload["model"]) and all_finite(payload["optimizer"])
    assert logged_steps(run) == [1, 2]
    assert all(math.isfinite(r["val_loss"]) for r in runs.read_jsonl(run / "log.jsonl"))
    assert [r["step"] for r in runs.read_jsonl(run / "samples.jsonl")] == [1, 1, 2, 2]

    monkeypatch.undo()
    capsys.readouterr()
    summary = train(cfg, run, runtime, cache_dir=cache)
    assert "resuming from step_000002.pt" in capsys.readouterr().out
    assert summary["steps"] == 4 and logged_steps(run) == [1, 2, 3, 4]
    state, _ = ckpt.load_weights(run / "final_model.safetensors")
    assert all_finite(state)


def test_lr_30_with_sampling_never_overflows(tmp_path, runtime, cache):
    cfg = dataclasses.replace(TINY, lr=30.0, sample_tokens=16)  # samples at steps 2, 4, 6
    try:
        summary = train(cfg, tmp_path / "run", runtime, cache_dir=cache)
    except H2QError as e:  # a clean stop is fine; an OverflowError or a torch traceback not
        one_line(e)
        return
    assert summary["steps"] == 6
    assert summary["best_perplexity"] == safe_exp(summary["best_val_loss"])
    for r in runs.read_jsonl(tmp_path / "run" / "log.jsonl"):
        if r["val_loss"] is not None:
            # an infinite perplexity is written as null: strict JSON has no Infinity
            finite = math.isfinite(safe_exp(r["val_loss"]))
            assert r["perplexity"] == (safe_exp(r["val_loss"]) if finite else None)
    assert len(runs.read_jsonl(tmp_path / "run" / "samples.jsonl")) == 6


def test_the_perplexity_of_a_huge_loss_is_inf():
    assert safe_exp(1e6) == math.inf
    assert perplexity(1e6) == math.inf
    assert safe_exp(0.0) == 1.0


# --- row 4: kill -9 while a resume rewrites the logs -----------------------------------------


class _Killed(BaseException):
    """Stands for the process dying: nothing after it runs."""


def test_truncation_interrupted_before_the_rename_leaves_the_logs_intact(
        interrupted, base, runtime, monkeypatch):
    before = {n: (interrupted / n).read_bytes() for n in ("log.jsonl", "samples.jsonl")}
    real_replace = os.replace

    def dying_replace(src, dst):
        if Path(dst).name.endswith(".jsonl"):
            raise _Killed
        return real_replace(src, dst)

    monkeypatch.setattr(runs.os, "replace", dying_replace)
    with pytest.raises(_Killed):
        train(TINY, interrupted, runtime)
    assert {n: (interrupted / n).read_bytes() for n in before} == before

    monkeypatch.undo()
    train(TINY, interrupted, runtime)
    assert losses(interrupted) == losses(base)


KILL_AT_LOG_RENAME = """import json, os, signal, sys
from pathlib import Path
real = os.replace
def replace(src, dst):
    if Path(dst).name == "log.jsonl":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig
from h2q_lib.training.trainer import train
train(TrainConfig.from_dict(json.loads(sys.argv[2])), sys.argv[1],
      RuntimeConfig(**json.loads(sys.argv[3])))
"""


@pytest.mark.slow
def test_sigkill_while_a_resume_rewrites_the_log_loses_nothing(interrupted, base, runtime):
    before = (interrupted / "log.jsonl").read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILL_AT_LOG_RENAME, str(interrupted),
                           json.dumps(TINY.to_dict()), json.dumps(runtime.to_dict())],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (interrupted / "log.jsonl").read_bytes() == before
    train(TINY, interrupted, runtime)
    assert losses(interrupted) == losses(base)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path, data_dir,
                                                                   runtime, cache):
    cfg = dataclasses.replace(TINY, steps=40, ckpt_every=5, eval_every=5, sample_tokens=0)
    train(cfg, tmp_path / "straight", runtime, cache_dir=cache)

    run = tmp_path / "killed"
    run.mkdir()
    shutil.copytree(cache, run / "token_cache")
    proc = subprocess.Popen([sys.executable, "-m", "h2q_lib.cli",
                             *cli_argv(cfg, run, data_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "step_000010.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()

    train(cfg, run, runtime)
    assert logged_steps(run) == list(range(1, 41))
    assert losses(run) == losses(tmp_path / "straight")


# --- row 5: resume with a different command --------------------------------------------------


@pytest.mark.parametrize("change,extend,named", [
    (dict(lr=0.01), False, ["lr 0.002 -> 0.01"]),
    (dict(steps=3), False, ["steps 6 -> 3"]),
    (dict(steps=50), False, ["steps 6 -> 50", "extend"]),
    (dict(n_embd=64), False, ["n_embd 32 -> 64"]),
    (dict(lr=0.01, n_embd=64, steps=50), False, ["lr 0.002", "n_embd 32", "steps 6"]),
    (dict(lr=0.01, steps=50), True, ["lr 0.002 -> 0.01"]),
], ids=["lr", "fewer steps", "more steps", "n_embd", "several", "lr with extend"])
def test_resume_with_a_different_recipe_is_refused_and_changes_nothing(
        interrupted, runtime, change, extend, named):
    before = snapshot(interrupted)
    with pytest.raises(RunFolderError, match="different recipe") as e:
        train(dataclasses.replace(TINY, **change), interrupted, runtime, extend=extend)
    message = one_line(e)
    for needle in named:
        assert needle in message
    assert snapshot(interrupted) == before


def test_extend_to_fewer_steps_is_refused(finished, runtime):
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match="steps"):
        train(dataclasses.replace(TINY, steps=3), finished, runtime, extend=True)
    assert snapshot(finished) == before


def test_a_different_recipe_is_refused_even_when_no_checkpoint_verifies(finished, runtime):
    for path in ckpt.step_checkpoints(finished / "checkpoints"):
        flip(path, "bit")
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match="different recipe"):
        train(dataclasses.replace(TINY, lr=0.01), finished, runtime)
    assert snapshot(finished) == before


def test_runtime_fields_may_differ_on_resume(interrupted, data_dir, capsys):
    threads = torch.get_num_threads()
    try:
        summary = train(TINY, interrupted, RuntimeConfig(
            data_dir=str(data_dir), quiet=False, device="auto", threads=1, precision="fp32"))
    finally:
        torch.set_num_threads(threads)
    assert "resuming from step_000004.pt" in capsys.readouterr().out
    assert summary["steps"] == 6 and logged_steps(interrupted) == [1, 2, 3, 4, 5, 6]


def test_extend_continues_a_finished_run_to_more_steps(finished, base, runtime, capsys):
    summary = train(dataclasses.replace(TINY, steps=10), finished, runtime, extend=True)
    assert "resuming from step_000006.pt" in capsys.readouterr().out
    assert summary["steps"] == 10 and summary["mean_tokens_per_s"] > 0
    assert logged_steps(finished) == list(range(1, 11))
    assert losses(finished)[:6] == losses(base)
    assert all(r["tokens_per_s"] > 0 for r in runs.read_jsonl(finished / "log.jsonl"))
    assert json.loads((finished / "config.json").read_text())["steps"] == 10


# --- row 8: one line for every bad input -----------------------------------------------------


@pytest.mark.parametrize("change,needle", [
    (dict(seed=-1), "seed=-1"),
    (dict(temperature=math.nan), "temperature=nan"),
    (dict(temperature=math.inf), "temperature=inf"),
    (dict(seed=1.5), "seed=1.5"),
], ids=["seed -1", "temperature nan", "temperature inf", "seed 1.5"])
def test_bad_values_are_refused_before_the_run_folder_is_made(tmp_path, runtime, change,
                                                              needle):
    with pytest.raises(ConfigError, match=needle) as e:
        get_profile("smoke", **change)
    one_line(e)
    with pytest.raises(ConfigError, match=needle):
        train(dataclasses.replace(TINY, **change), tmp_path / "run", runtime)
    assert not (tmp_path / "run").exists()


def bad_data_dir(tmp_path: Path, data_dir: Path) -> Path:
    """A copy of the smoke profile's data folder whose training file is not UTF-8."""
    folder = tmp_path / "data" / DATA_CONFIG
    folder.mkdir(parents=True)
    for src in (data_dir / DATA_CONFIG).iterdir():
        if src.name.startswith(("wiki.train", "wiki.valid")):
            shutil.copyfile(src, folder / src.name)
    train_file = next(folder.glob("wiki.train.*"))
    raw = train_file.read_bytes()
    train_file.write_bytes(raw[:1000] + b"\xff\xfe" + raw[1000:])
    return tmp_path / "data"


def assert_nothing_trained(run: Path) -> None:
    assert not (run / "log.jsonl").exists() and not (run / "config.json").exists()
    assert not (run / "checkpoints").exists() or list((run / "checkpoints").iterdir()) == []


def test_a_data_file_that_is_not_utf8_is_one_line(tmp_path, data_dir, monkeypatch):
    bad_data_dir(tmp_path, data_dir)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataUnavailableError, match="not UTF-8") as e:
        train(TINY, "run", RuntimeConfig(data_dir="data", quiet=True, device="cpu"))
    assert one_line(e).startswith(f"data/{DATA_CONFIG}/wiki.train.")  # the path as typed
    assert_nothing_trained(tmp_path / "run")


def _copy_data(tmp_path: Path, data_dir: Path) -> Path:
    shutil.copytree(data_dir / DATA_CONFIG, tmp_path / "data" / DATA_CONFIG)
    return tmp_path / "data"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_data_file_without_read_permission_is_one_line(tmp_path, data_dir):
    data = _copy_data(tmp_path, data_dir)
    for f in (data / DATA_CONFIG).iterdir():
        f.chmod(0o000 if f.name.startswith("wiki.valid") else 0o644)
    with pytest.raises(DataUnavailableError, match="cannot be read") as e:
        train(TINY, tmp_path / "run", RuntimeConfig(data_dir=str(data), quiet=True))
    one_line(e)
    assert_nothing_trained(tmp_path / "run")


def test_a_data_file_that_cannot_be_read_is_one_line(tmp_path, data_dir, monkeypatch):
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name.startswith("wiki.valid"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(DataUnavailableError, match="wiki.valid.*cannot be read") as e:
        train(TINY, tmp_path / "run", RuntimeConfig(data_dir=str(data_dir), quiet=True))
    one_line(e)
    assert_nothing_trained(tmp_path / "run")


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, runtime, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("the user's file\n")
    with pytest.raises(RunFolderError, match="run_dir='notes.txt' is a file") as e:
        train(TINY, "notes.txt", runtime)
    one_line(e)
    assert Path("notes.txt").read_text() == "the user's file\n"


def test_a_run_dir_inside_a_file_is_one_line(tmp_path, runtime):
    (tmp_path / "notes.txt").write_text("the user's file\n")
    with pytest.raises(RunFolderError, match="cannot be written") as e:
        train(TINY, tmp_path / "notes.txt" / "run", runtime)
    one_line(e)
    assert (tmp_path / "notes.txt").read_text() == "the user's file\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder whatever its mode")
def test_a_run_dir_without_write_permission_is_one_line(tmp_path, runtime):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="cannot be written") as e:
            train(TINY, tmp_path / "ro" / "run", runtime)
        one_line(e)
    finally:
        (tmp_path / "ro").chmod(0o755)


def _cli_case(case: str, tmp_path: Path, data_dir: Path, base: Path) -> tuple[list, str]:
    fresh = tmp_path / "run"
    if case == "seed":
        return cli_argv(TINY, fresh, data_dir, "--seed", "-1"), "seed=-1"
    if case == "temperature":
        return cli_argv(TINY, fresh, data_dir, "--temperature", "nan"), "temperature=nan"
    if case == "data not utf-8":
        return cli_argv(TINY, fresh, bad_data_dir(tmp_path, data_dir)), "is not UTF-8"
    if case == "run dir is a file":
        (tmp_path / "f").write_text("x")
        return cli_argv(TINY, tmp_path / "f", data_dir), "is a file"
    if case == "divergence":
        shutil.copytree(base / "token_cache", fresh / "token_cache")
        return (cli_argv(EVERY_STEP, fresh, data_dir, "--lr", "1e39"),
                "non-finite after the update at step 1")
    if case == "different recipe":
        shutil.copytree(base, fresh)
        return cli_argv(TINY, fresh, data_dir, "--lr", "0.01"), "(lr 0.002 -> 0.01)"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["seed", "temperature", "data not utf-8",
                                  "run dir is a file", "divergence", "different recipe"])
def test_the_command_line_prints_one_line_and_exits_2(tmp_path, data_dir, base, capsys, case):
    argv, needle = _cli_case(case, tmp_path, data_dir, base)
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("h2q: error: ") and err.count("\n") == 1, err
    assert needle in err


# --- row 9: damaged side files ---------------------------------------------------------------


def _edit_json(**changes):
    def edit(path: Path) -> None:
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return edit


def _flip_first_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage,target", [
    (lambda p: p.write_bytes(b"\xff\xfe\x00{\"dtype"), "json"),
    (lambda p: p.write_text("[]"), "json"),
    (lambda p: p.write_text(""), "json"),
    (_edit_json(dtype="uint32"), "json"),
    (_edit_json(dtype="nonsense"), "json"),
    (_edit_json(dtype={"a": 1}), "json"),
    (_edit_json(num_tokens=None), "json"),
    (_flip_first_byte, "bin"),
], ids=["bad bytes", "[]", "empty", "dtype uint32", "dtype nonsense", "dtype dict",
        "num_tokens null", "flipped token"])
def test_an_unusable_token_cache_is_rebuilt(base, tmp_path, data_dir, damage, target):
    split = load_split("train", DATA_CONFIG, data_dir)
    tokenizer = tokenizer_from_dict(json.loads((base / "tokenizer.json").read_text()))
    cache = Path(shutil.copytree(base / "token_cache", tmp_path / "cache"))
    stem = f"{DATA_CONFIG}.train.{tokenizer.name}"
    intact = (cache / f"{stem}.bin").read_bytes()
    damage(cache / f"{stem}.{target}")
    rebuilt = tc.cached_tokens(split, tokenizer, cache)
    assert rebuilt.rebuilt
    assert rebuilt.tokens.tobytes() == intact == (cache / f"{stem}.bin").read_bytes()
    assert not tc.cached_tokens(split, tokenizer, cache).rebuilt  # metadata readable again


def test_resume_through_a_damaged_token_cache_matches_an_uninterrupted_run(interrupted, base,
                                                                           runtime):
    for meta in (interrupted / "token_cache").glob("*.json"):
        meta.write_bytes(b"\x00\xff garbage")
    train(TINY, interrupted, runtime)
    assert losses(interrupted) == losses(base)


def test_a_truncated_config_json_is_restored_from_the_checkpoint(interrupted, base, runtime,
                                                                 capsys):
    (interrupted / "config.json").write_text('{"tokenizer": "ch')
    train(TINY, interrupted, runtime)
    out = capsys.readouterr().out
    assert "config.json" in out and "restored from step_000004.pt" in out
    assert json.loads((interrupted / "config.json").read_text()) == TINY.to_dict()
    assert losses(interrupted) == losses(base)


def test_a_truncated_tokenizer_json_is_replaced_on_resume(interrupted, base, runtime):
    (interrupted / "tokenizer.json").write_text('{"name": "ch')
    train(TINY, interrupted, runtime)
    assert (json.loads((interrupted / "tokenizer.json").read_text())
            == json.loads((base / "tokenizer.json").read_text()))
    assert losses(interrupted) == losses(base)


def test_a_truncated_tokenizer_json_is_announced(interrupted, runtime, capsys):
    (interrupted / "tokenizer.json").write_text('{"name": "ch')
    train(TINY, interrupted, runtime)
    assert "tokenizer.json" in capsys.readouterr().out


def test_a_corrupt_config_json_of_a_finished_run_is_replaced(finished, runtime, capsys):
    (finished / "config.json").write_text('{"tokenizer": "ch')
    train(TINY, finished, runtime)
    assert "restored from step_000006.pt" in capsys.readouterr().out
    assert json.loads((finished / "config.json").read_text()) == TINY.to_dict()


def test_a_torn_last_log_line_is_dropped_with_a_notice_and_resume_works(interrupted, base,
                                                                        runtime, capsys):
    with open(interrupted / "log.jsonl", "a") as f:
        f.write('{"step": 7, "train_loss": 4.1')  # a write cut short: no newline
    capsys.readouterr()
    train(TINY, interrupted, runtime)
    out = capsys.readouterr().out
    assert "log.jsonl: line 7 is incomplete or corrupt and was dropped" in out
    assert losses(interrupted) == losses(base)


def test_read_jsonl_drops_a_torn_line_and_says_so(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "tr')
    notices = []
    assert runs.read_jsonl(log, announce=notices.append) == [{"step": 1}, {"step": 2}]
    assert notices == [f"{log}: line 3 is incomplete or corrupt and was dropped"]
    runs.truncate_jsonl(log, after_step=2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'


# --- row 10: a full disk ---------------------------------------------------------------------


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_a_checkpoint_is_one_line_and_loses_nothing(
        interrupted, base, runtime, monkeypatch, tmp_path):
    checkpoints = snapshot(interrupted / "checkpoints")
    real_save = torch.save

    def full_disk_save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 partial")
        else:
            Path(f).write_bytes(b"PK\x03\x04 partial")
        raise _enospc()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch, "save", full_disk_save)
    with pytest.raises(RunFolderError, match="no space left on") as e:
        train(TINY, "run", runtime)  # the run folder as typed: relative
    assert "run/checkpoints/" in one_line(e) and str(tmp_path) not in str(e.value)
    assert tmp_files(interrupted) == []
    assert snapshot(interrupted / "checkpoints") == checkpoints

    monkeypatch.setattr(torch, "save", real_save)  # space freed: the run resumes
    train(TINY, "run", runtime)
    assert losses(interrupted) == losses(base)


def test_a_full_disk_during_the_token_cache_is_one_line(tmp_path, runtime, monkeypatch):
    def full_disk_encode(tokenizer, lines, path, chunk_chars=0):
        Path(path).write_bytes(b"\x00" * 100)
        raise _enospc()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tc, "encode_to_file", full_disk_encode)
    with pytest.raises(RunFolderError, match="no space left on") as e:
        train(TINY, "run", runtime, cache_dir="cache")
    assert f"cache/{DATA_CONFIG}.train." in one_line(e)
    assert list(Path("cache").iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of the asked size (KiB) under tmp_path: a real full disk (root only)."""
    mounted = []

    def mount(kib: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                capture_output=True).returncode != 0:
            pytest.skip("a small tmpfs cannot be mounted here (needs root)")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # even if a file is open


def _tiny_model_and_optimizer(n_embd: int):
    model = GPT(GPTConfig(vocab_size=100, n_layer=1, n_embd=n_embd, n_head=2, n_ff=n_embd,
                          block_size=8))
    return model, torch.optim.AdamW(model.parameters()), torch.amp.GradScaler("cpu", enabled=False)


@pytest.mark.parametrize("what", ["training checkpoint", "weights file", "log line"])
def test_a_real_full_disk_is_named_and_the_old_file_kept(small_disk, what):
    disk = small_disk(64)
    small, big = _tiny_model_and_optimizer(8), _tiny_model_and_optimizer(256)
    if what == "training checkpoint":
        target = disk / "step_000001.pt"
        ckpt.save_training(target, *small, {"step": 1})
        write = lambda: ckpt.save_training(target, *big, {"step": 2})  # noqa: E731
    elif what == "weights file":
        target = disk / "final_model.safetensors"
        ckpt.save_weights(target, small[0], {"step": 1})
        write = lambda: ckpt.save_weights(target, big[0], {"step": 2})  # noqa: E731
    else:
        target = disk / "log.jsonl"
        runs.append_jsonl(target, [{"step": 1}])
        write = lambda: runs.append_jsonl(target, [{"step": 2, "x": "y" * 200_000}])  # noqa: E731
    before = target.read_bytes()
    with pytest.raises(RunFolderError, match=f"no space left on .*{re.escape(str(target))}") as e:
        write()
    one_line(e)
    assert target.read_bytes() == before
    assert tmp_files(disk) == [] and sorted(disk.iterdir()) == [target]


def test_a_real_full_disk_during_the_token_cache_is_named(small_disk, base, data_dir):
    disk = small_disk(64)  # the training text's 282 KB of tokens do not fit
    split = load_split("train", DATA_CONFIG, data_dir)
    tokenizer = tokenizer_from_dict(json.loads((base / "tokenizer.json").read_text()))
    with pytest.raises(RunFolderError, match=f"no space left on .*{re.escape(str(disk))}") as e:
        tc.cached_tokens(split, tokenizer, disk)
    one_line(e)
    assert list(disk.iterdir()) == []


def test_training_onto_a_real_full_disk_stops_with_one_line(small_disk, interrupted, runtime,
                                                            cache):
    shutil.rmtree(interrupted / "token_cache")
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in interrupted.rglob("*")
               if p.is_file())
    disk = small_disk(used // 1024 + 96)  # room for the small files, not for a checkpoint
    run = Path(shutil.copytree(interrupted, disk / "run"))
    checkpoints = snapshot(run / "checkpoints")
    where = re.escape(str(run))
    with pytest.raises(RunFolderError, match=f"no space left on the disk of {where}") as e:
        train(TINY, run, runtime, cache_dir=cache)
    one_line(e)
    assert tmp_files(run) == []
    assert snapshot(run / "checkpoints") == checkpoints
    notices = []
    assert runs.read_jsonl(run / "log.jsonl", announce=notices.append) and notices == []


# --- row 6: restart removes only what the project made ---------------------------------------


def test_restart_refuses_a_folder_the_project_did_not_make(tmp_path):
    mine = tmp_path / "my-thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    with pytest.raises(RunFolderError, match="not a run folder made by h2q"):
        run_cleanup.restart_run_folder(mine)
    assert (mine / "chapter1.tex").read_text() == "years of work"
    # the notebooks' restart parameter goes through the same function
    from h2q_lib.book.data_tables import prepare_run_data

    with pytest.raises(RunFolderError, match="nothing in it was deleted"):
        prepare_run_data(TINY, mine, restart=True)
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]


def test_restart_removes_the_run_but_keeps_a_users_file_in_it(base, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base, run)
    (run / "notes.txt").write_text("mine")
    run_cleanup.restart_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    run_cleanup.restart_run_folder(tmp_path / "never-made")  # nothing there: nothing to do


def test_restart_also_removes_the_precision_effect_the_evaluation_chapter_stored(base, tmp_path):
    """Left behind, it made the folder unmarked and non-empty: the next run refused it
    (``make regression`` twice in a row)."""
    run = tmp_path / "run"
    shutil.copytree(base, run)
    (run / "precision_effect.json").write_text("{}")
    run_cleanup.restart_run_folder(run)
    assert not run.exists() or list(run.iterdir()) == []


# === issue #24: a run folder that knows itself ==============================================
# Each test below names its row of the table; each failed on the code the issue tried.


def strict_json(text: str) -> object:
    """``json.loads`` that refuses Infinity and NaN, as strict parsers (browsers, jq) do."""
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


# --- row 1: the precision is the run's, not the moment's ------------------------------------


def test_a_resumed_auto_run_keeps_the_precision_it_began_with(interrupted, base, data_dir,
                                                              monkeypatch, capsys):
    from h2q_lib.training import hardware

    # this session's probe would pick bf16; the run began (and checkpointed) in fp32
    monkeypatch.setattr(hardware, "measured_bf16_speedup", lambda threads=None: 4.0)
    capsys.readouterr()
    summary = train(TINY, interrupted, RuntimeConfig(data_dir=str(data_dir), quiet=True,
                                                     device="cpu", precision="auto"))
    out = capsys.readouterr().out
    assert "precision fp32 on cpu: kept from the run's checkpoint at step 4" in out
    assert [s["precision"] for s in summary["sessions"]] == ["fp32", "fp32"]
    assert losses(interrupted) == losses(base)


def test_a_precision_asked_for_by_name_on_resume_is_a_new_session(interrupted, data_dir,
                                                                  capsys):
    summary = train(TINY, interrupted, RuntimeConfig(data_dir=str(data_dir), quiet=True,
                                                     device="cpu", precision="bf16"))
    assert "precision changes from the run's fp32 to bf16 from step 4 on" in \
        capsys.readouterr().out
    assert [(s["from_step"], s["precision"]) for s in summary["sessions"]] == \
        [(0, "fp32"), (4, "bf16")]


# --- row 2: a checkpoint is the run's own, at the step its name says -------------------------


def _forged(source: Path, target: Path, **recipe) -> None:
    """``source`` with its recipe edited and its checksum made valid again: another run's."""
    payload = torch.load(source, weights_only=True)
    meta = json.loads(payload["meta_json"])
    meta["recipe"].update(recipe)
    payload["meta_json"] = json.dumps(meta)
    payload.pop("sha256")
    payload["sha256"] = ckpt.digest(payload)
    torch.save(payload, target)


@pytest.mark.parametrize("how,said", [
    ("renamed", "holds step 2, not step 6 as its name says"),
    ("other recipe", "was written by a different recipe (lr 0.01 where the run has 0.002)"),
])
def test_a_checkpoint_of_another_step_or_run_is_skipped(interrupted, base, runtime, capsys,
                                                        how, said):
    checkpoints = interrupted / "checkpoints"
    if how == "renamed":
        shutil.copyfile(checkpoints / "step_000002.pt", checkpoints / "step_000006.pt")
    else:
        _forged(base / "checkpoints" / "step_000006.pt", checkpoints / "step_000006.pt",
                lr=0.01)
    ckpt.read_training(checkpoints / "step_000006.pt")  # a valid checkpoint, just not this
    capsys.readouterr()
    train(TINY, interrupted, runtime)
    out = capsys.readouterr().out
    assert f"step_000006.pt {said}: skipped" in out
    assert "resuming from step_000004.pt (step 4)" in out
    assert losses(interrupted) == losses(base)


def test_checkpoints_and_final_weights_carry_the_recipe_hash_and_step(base):
    want = recipe_identity.recipe_sha256(TINY)
    for name in ("step_000002.pt", "step_000006.pt"):
        meta = ckpt.read_training(base / "checkpoints" / name)["meta"]
        assert meta["recipe_sha256"] == want and meta["step"] == int(name[5:11])
    _, meta = ckpt.load_weights(base / "final_model.safetensors")
    assert meta["recipe_sha256"] == want and meta["step"] == TINY.steps
    # an older checkpoint (no hash) is checked by the recipe it carries
    assert recipe_identity.written_by({"recipe": TINY.to_dict()}, TINY) is None


# --- rows 3, 4, 5: a stored evaluation is reused only when it is sound -----------------------

EVAL = dict(protocols=("report",), splits=("validation",), max_documents=1, device="cpu",
            precision="fp32", batch_size=4)


@pytest.fixture(scope="module")
def scored(base, tmp_path_factory, data_dir) -> Path:
    """The base run with one page of its validation split scored into evaluation.json."""
    from h2q_lib.evaluation.checkpoint_scores import evaluate_run

    run = Path(shutil.copytree(base, tmp_path_factory.mktemp("scored") / "run"))
    evaluate_run(run, data_dir=data_dir, **EVAL)
    return run


@pytest.fixture
def evaluated(scored, tmp_path) -> Path:
    return Path(shutil.copytree(scored, tmp_path / "evaluated"))


def test_a_flipped_bit_in_the_weights_is_named_not_a_stored_result_reused(evaluated, data_dir):
    from h2q_lib.evaluation.checkpoint_scores import evaluate_run

    flip(evaluated / "final_model.safetensors", "bit")
    said = []
    with pytest.raises(CheckpointError, match="final_model.safetensors is corrupted") as e:
        evaluate_run(evaluated, data_dir=data_dir, announce=said.append, **EVAL)
    one_line(e)
    assert not any("reused" in s for s in said)


def _set_metric(value):
    def edit(entry: dict) -> None:
        entry["result"]["metrics"]["bits_per_byte"] = value
    return edit


@pytest.mark.parametrize("edit,why", [
    (_set_metric(0.01), "do not follow from its summed NLL"),
    (_set_metric("0.01"), "not a number"),
    (lambda entry: entry["result"]["metrics"].pop("byte_perplexity"), "do not follow"),
    (lambda entry: entry["result"].pop("metrics"), "has no metrics"),
    (lambda entry: entry.update(result="gone"), "has no metrics"),
    (lambda entry: entry["result"].update(nll_sum=1.0), "do not follow"),
], ids=["edited number", "string", "dropped metric", "no metrics", "result a string",
        "edited nll"])
def test_an_edited_stored_result_is_scored_again_and_said(evaluated, data_dir, capsys, edit,
                                                          why):
    from h2q_lib.cli import main as h2q

    path = evaluated / "evaluation.json"
    good = json.loads(path.read_text())
    stored = json.loads(path.read_text())
    edit(stored["report"]["validation"])
    path.write_text(json.dumps(stored))
    capsys.readouterr()
    assert h2q(["evaluate", str(evaluated), "--protocol", "report", "--splits", "validation",
                "--max-documents", "1", "--device", "cpu", "--precision", "fp32",
                "--batch-size", "4", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "report validation: the stored result" in out and why in out and "scoring again" in out
    again = json.loads(path.read_text())["report"]["validation"]["result"]
    assert again["metrics"] == good["report"]["validation"]["result"]["metrics"]


def test_weights_of_another_recipe_in_a_run_are_refused_and_rewritten(evaluated, base, runtime,
                                                                      cache, tmp_path, data_dir,
                                                                      capsys):
    from h2q_lib.evaluation.checkpoint_scores import evaluate_run

    other = tmp_path / "other"
    train(dataclasses.replace(TINY, n_embd=16, n_ff=32, steps=2, sample_tokens=0), other,
          runtime, cache_dir=cache)
    shutil.copyfile(other / "final_model.safetensors", evaluated / "final_model.safetensors")
    before = (evaluated / "evaluation.json").read_bytes()
    with pytest.raises(CheckpointError, match="different recipe .*n_embd 16 where the run "
                       "has 32.*not this run's final model") as e:
        evaluate_run(evaluated, data_dir=data_dir, **EVAL)
    one_line(e)
    assert (evaluated / "evaluation.json").read_bytes() == before
    capsys.readouterr()
    summary = train(TINY, evaluated, runtime)  # not read as finished: written again
    assert "not this run's final weights; they are written again from step_000006.pt" in \
        capsys.readouterr().out
    assert summary["steps"] == 6
    mine, _ = ckpt.load_weights(evaluated / "final_model.safetensors")
    theirs, _ = ckpt.load_weights(base / "final_model.safetensors")
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


# --- rows 6, 7: the lock cannot be aimed elsewhere -------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo", "unwritable"])
def test_a_lock_that_is_not_a_regular_file_is_refused_in_one_line(interrupted, runtime,
                                                                  tmp_path, kind):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = interrupted / ".lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "folder":
        lock.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        if os.geteuid() == 0:
            pytest.skip("root opens a file whatever its mode")
        lock.write_text("")
        lock.chmod(0o444)
    before = snapshot(interrupted)
    with pytest.raises(RunFolderError, match=r"\.lock .*cannot be locked") as e:
        train(TINY, interrupted, runtime)
    one_line(e)
    assert victim.read_text() == "precious\n"
    assert snapshot(interrupted) == before


# --- row 8: restart of a symbolic link -------------------------------------------------------


def test_restart_refuses_a_symlink_to_a_run_folder(finished, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(finished, target_is_directory=True)
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match="is a symbolic link") as e:
        run_cleanup.restart_run_folder(link)
    one_line(e)
    assert snapshot(finished) == before


# --- row 9: a folder where a file is expected ------------------------------------------------


@pytest.mark.parametrize("where", ["checkpoints/step_000006.pt", "checkpoints/best.pt",
                                   "token_cache/json", "token_cache"])
def test_a_folder_where_a_file_is_written_is_one_line(interrupted, runtime, where):
    if where == "token_cache/json":
        meta = next((interrupted / "token_cache").glob("*.train.*.json"))
        meta.unlink()
        meta.mkdir()
    elif where == "token_cache":
        shutil.rmtree(interrupted / "token_cache")
        (interrupted / "token_cache").write_text("not a folder")
    else:
        (interrupted / where).unlink(missing_ok=True)
        (interrupted / where).mkdir()
    with pytest.raises(RunFolderError, match="is a f") as e:
        train(TINY, interrupted, runtime)
    one_line(e)


# --- row 10: --extend keeps the schedule -----------------------------------------------------


def test_extend_without_schedule_steps_keeps_the_runs_schedule(finished, runtime, capsys):
    assert TINY.schedule_steps is None
    longer = dataclasses.replace(TINY, steps=9)
    train(longer, finished, runtime, extend=True)
    assert "schedule_steps 6" in capsys.readouterr().out
    lrs = [r["lr"] for r in runs.read_jsonl(finished / "log.jsonl")]
    assert lrs[6:] == [TINY.min_lr] * 3  # the cosine ended at step 6: it holds, never climbs
    assert json.loads((finished / "config.json").read_text())["schedule_steps"] == 6
    assert train(longer, finished, runtime, extend=True)["steps"] == 9  # the same command again


# --- row 12: bounds checked up front ---------------------------------------------------------


@pytest.mark.parametrize("flags,needle", [
    (["--seed", str(2**64)], f"seed={2**64}"),
    (["--seed", str(2**60), "--sample-tokens", "4"], f"seed={2**60}"),
    (["--threads", "99999999999"], "threads=99999999999"),
    (["--n-embd", str(10**12)], f"n_embd={10**12}"),
    (["--block-size", str(10**9)], f"block_size={10**9}"),
], ids=["seed 2**64", "seed 2**60", "threads", "n_embd", "block_size"])
def test_out_of_bounds_values_are_one_line_before_anything_is_made(tmp_path, data_dir, capsys,
                                                                   flags, needle):
    run = tmp_path / "run"
    capsys.readouterr()
    assert cli_main(cli_argv(TINY, run, data_dir, *flags)) == 2
    err = capsys.readouterr().err
    assert err.startswith("h2q: error: ") and err.count("\n") == 1 and needle in err, err
    assert not run.exists()


# --- row 13: a GPT-2 folder with a bad config.json -------------------------------------------


@pytest.mark.parametrize("config,needle", [
    ("{not json", "not readable JSON"),
    ('{"n_positions": "abc"}', "n_positions='abc'"),
    ("[1, 2]", "holds a list"),
], ids=["not json", "n_positions abc", "a list"])
def test_a_gpt2_folder_with_a_bad_config_is_one_line(tmp_path, data_dir, monkeypatch, capsys,
                                                     config, needle):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli_main(["evaluate", "gpt2", "--device", "cpu", "--precision", "fp32",
                     "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


# --- row 14: evaluating an unfinished run ----------------------------------------------------


def test_evaluating_an_unfinished_run_says_to_finish_it(interrupted, data_dir, capsys):
    capsys.readouterr()
    assert cli_main(["evaluate", str(interrupted), "--device", "cpu", "--data-dir",
                     str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "has no final weights" in err and "train the run to its end first" in err
    assert "GPT-2" not in err and err.count("\n") == 1


# --- row 15: temporaries of a killed writer --------------------------------------------------


def test_stale_temporaries_are_removed_under_the_lock(interrupted, base, runtime, capsys):
    left = [interrupted / "checkpoints" / ".step_000006.pt.k2x9_q1z.tmp",
            interrupted / ".config.json.abcd1234.tmp",
            interrupted / ".final_model.safetensors.zz00yy11.tmp",
            interrupted / "token_cache" / ".wikitext-2-raw-v1.train.char.bin.q1w2e3r4.tmp"]
    for path in left:
        path.write_bytes(b"half")
    (interrupted / "notes.tmp").write_text("the user's")
    capsys.readouterr()
    train(TINY, interrupted, runtime)
    assert "left by a writer that was stopped" in capsys.readouterr().out
    assert not any(p.exists() for p in left)
    assert (interrupted / "notes.tmp").read_text() == "the user's"
    assert losses(interrupted) == losses(base)


# --- row 16: SIGINT and SIGTERM save at the step boundary ------------------------------------


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_at_the_step_boundary_and_resume_is_exact(tmp_path, base, data_dir,
                                                                 runtime, monkeypatch, capsys,
                                                                 sig, code):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(base / "token_cache", run / "token_cache")
    real = train_mod.lr_at

    def lr_at(step, cfg):
        if step == 2:  # while the third step runs
            os.kill(os.getpid(), sig)
        return real(step, cfg)

    monkeypatch.setattr(train_mod, "lr_at", lr_at)
    capsys.readouterr()
    assert cli_main(cli_argv(TINY, run, data_dir)) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"interrupted by {sig.name} after step 3: saved" in err and "step_000003.pt" in err
    assert ckpt.read_training(run / "checkpoints" / "step_000003.pt")["meta"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.undo()
    train(TINY, run, runtime)
    assert losses(run) == losses(base)


# --- row 17: strict JSON ---------------------------------------------------------------------


def test_every_json_file_of_a_run_is_strict_json_even_with_infinities(base, tmp_path):
    runs.append_jsonl(tmp_path / "log.jsonl", [{"step": 1, "perplexity": math.inf,
                                                "val_loss": math.nan}])
    runs.write_json(tmp_path / "summary.json", {"best_perplexity": -math.inf, "x": [math.inf]})
    assert strict_json((tmp_path / "log.jsonl").read_text()) == \
        {"step": 1, "perplexity": None, "val_loss": None}
    assert strict_json((tmp_path / "summary.json").read_text()) == \
        {"best_perplexity": None, "x": [None]}
    for path in [*base.glob("*.json"), *base.glob("token_cache/*.json")]:
        strict_json(path.read_text())
    for path in base.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            strict_json(line)


# --- row 18: python -m h2q_lib.evaluation.lm_eval_adapter with bad --model_args -------


@pytest.mark.parametrize("model_args,needle", [
    ({"checkpoint": "missing.safetensors", "device": "cpu"},
     "missing.safetensors does not exist"),
    ({"checkpoint": "x.safetensors", "colour": "red"}, "model_args='colour'"),
    ({"checkpoint": "x.safetensors", "seed": "abc"}, "seed='abc'"),
    ({"checkpoint": "x.safetensors", "max_gen_toks": "0"}, "max_gen_toks='0'"),
], ids=["missing checkpoint", "unknown key", "bad seed", "max_gen_toks 0"])
def test_bad_model_args_to_the_harness_are_one_line(tmp_path, monkeypatch, model_args, needle):
    harness = pytest.importorskip("h2q_lib.evaluation.lm_eval_adapter")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(H2QError, match=re.escape(needle)) as e:
        harness.H2QLM.create_from_arg_obj(model_args, {"device": "cuda:0", "batch_size": 1})
    one_line(e)


@pytest.mark.slow
def test_the_harness_command_line_ends_bad_model_args_in_one_line(tmp_path):
    pytest.importorskip("lm_eval")
    proc = subprocess.run([sys.executable, "-m", "h2q_lib.evaluation.lm_eval_adapter",
                           "--model", "h2q",
                           "--model_args", "checkpoint=x.safetensors,colour=red",
                           "--tasks", "wikitext"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("h2q_lib.evaluation.lm_eval_adapter: error: model_args='colour'"), last
    assert "Traceback" not in proc.stderr


def test_the_harness_records_the_device_it_runs_on():
    harness = pytest.importorskip("h2q_lib.evaluation.lm_eval_adapter")
    argv = ["--model", "h2q", "--model_args", "checkpoint=x.safetensors", "--tasks", "wikitext"]
    assert harness._with_device(argv)[-2:] == ["--device", harness.pick_device("auto")]
    assert harness._with_device([*argv[:3], "checkpoint=x,device=cpu", *argv[4:]])[-1] == "cpu"
    assert harness._with_device([*argv, "--device", "cpu"]) == [*argv, "--device", "cpu"]


# --- row 19: restart removes only what the project wrote -------------------------------------


def test_restart_keeps_and_names_the_users_files_in_checkpoints_and_token_cache(finished):
    (finished / "checkpoints" / "my-notes.txt").write_text("mine")
    (finished / "token_cache" / "mine.bin").write_bytes(b"mine")
    said = []
    kept = run_cleanup.restart_run_folder(finished, announce=said.append)
    assert sorted(p.name for p in kept) == ["mine.bin", "my-notes.txt"]
    assert "mine.bin" in said[0] and "my-notes.txt" in said[0]
    assert sorted(str(p.relative_to(finished)) for p in finished.rglob("*")) == \
        ["checkpoints", "checkpoints/my-notes.txt", "token_cache", "token_cache/mine.bin"]


# --- row 20: advice that can be followed -----------------------------------------------------


def test_the_advice_to_restart_names_a_command_that_exists(finished, data_dir, capsys):
    argv = cli_argv(TINY, finished, data_dir, "--lr", "0.01")
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "h2q train --restart" in err
    assert cli_main([*argv, "--restart"]) == 0  # the advice, followed
    assert json.loads((finished / "config.json").read_text())["lr"] == 0.01
    assert logged_steps(finished) == list(range(1, 7))
