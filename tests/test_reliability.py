"""Crashes, broken or hostile checkpoints, and bad parameters on every entry point."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from h2q_lib import checkpoint as ckpt
from h2q_lib.cli import main as cli_main
from h2q_lib.errors import CheckpointError, ConfigError, DataUnavailableError
from h2q_lib.model import GPT, GPTConfig
from h2q_lib.profiles import get_profile
from h2q_lib.train import read_jsonl, train

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--profile", "smoke", "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
              "--n-ff", "64", "--block-size", "32", "--batch-size", "4", "--grad-accum", "2",
              "--eval-every", "4", "--eval-batches", "2", "--log-every", "1",
              "--sample-tokens", "0", "--quiet", "true"]


def _losses(run):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_jsonl(run / "log.jsonl")]


def _cmd(run, data_dir, steps, ckpt_every):
    return [sys.executable, "-m", "h2q_lib.cli", "train", *TINY_FLAGS, "--steps", str(steps),
            "--ckpt-every", str(ckpt_every), "--data-dir", str(data_dir), "--run-dir", str(run)]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path, data_dir):
    steps = 40
    straight = subprocess.run(_cmd(tmp_path / "straight", data_dir, steps, 5), cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(run, data_dir, steps, 5), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "step_000010.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "summary.json").exists()

    resumed = subprocess.run(_cmd(run, data_dir, steps, 5), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step_" in resumed.stdout
    assert _losses(run) == _losses(tmp_path / "straight")


def test_torn_temporary_file_is_never_taken_for_a_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".step_000009.pt.tmp").write_bytes(b"PK\x03\x04 half written")
    assert ckpt.step_checkpoints(folder) == []


def _tiny_run(tmp_path, data_dir, steps=8):
    cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                      batch_size=4, grad_accum=2, steps=steps, warmup=2, eval_every=4,
                      eval_batches=2, log_every=1, ckpt_every=4, sample_tokens=0, quiet=True,
                      data_dir=str(data_dir))
    train(cfg, tmp_path / "run")
    return cfg, tmp_path / "run"


def test_truncated_checkpoint_is_named_and_resume_falls_back(tmp_path, data_dir, capsys):
    cfg, run = _tiny_run(tmp_path, data_dir)
    latest = run / "checkpoints" / "step_000008.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="step_000008.pt"):
        ckpt.read_training(latest)
    (run / "summary.json").unlink()
    capsys.readouterr()
    train(cfg, run)
    out = capsys.readouterr().out
    assert "step_000008.pt" in out and "falling back" in out
    assert "resuming from step_000004.pt" in out


def test_corrupted_bytes_in_a_checkpoint_are_reported(tmp_path, data_dir):
    _, run = _tiny_run(tmp_path, data_dir)
    path = run / "checkpoints" / "step_000004.pt"
    data = bytearray(path.read_bytes())
    data[:64] = b"\x00" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="step_000004.pt"):
        ckpt.read_training(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"h2q-exploit-{os.getpid()}"


def test_a_checkpoint_crafted_to_run_code_is_refused(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "step_000001.pt"
    torch.save({"format": "h2q-checkpoint-1", "model": _Exploit(), "meta_json": "{}"}, path,
               pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        ckpt.read_training(path)
    assert not MARKER.exists()
    model = GPT(GPTConfig(vocab_size=10, n_layer=1, n_embd=8, n_head=2, n_ff=8, block_size=4))
    assert ckpt.load_latest(tmp_path, model) is None
    assert not MARKER.exists()


# --- bad parameters: Python API, command line, papermill --------------------------------------


@pytest.mark.parametrize("kw,param", [
    (dict(tokenizer="bpe"), "tokenizer='bpe'"),
    (dict(steps=0), "steps=0"),
    (dict(batch_size=-1), "batch_size=-1"),
    (dict(lr=0.0), "lr=0.0"),
    (dict(lr=-1e-3), "lr=-0.001"),
    (dict(warmup=10_000), "warmup=10000"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(n_head=3), "n_head=3"),
])
def test_bad_values_name_the_parameter_and_what_is_allowed(kw, param):
    with pytest.raises(ConfigError) as e:
        get_profile("cpu", **kw)
    assert param in str(e.value) and "expected" in str(e.value)


def test_unknown_profile_and_field():
    with pytest.raises(ConfigError, match="profile='nope'.*smoke, cpu, report"):
        get_profile("nope")
    with pytest.raises(ConfigError, match="override='stepz'"):
        get_profile("cpu", stepz=3)


def test_unavailable_device_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = get_profile("smoke", device="mps", data_dir=str(data_dir))
    with pytest.raises(ConfigError, match="device='mps'"):
        train(cfg, tmp_path / "run")


def test_context_longer_than_the_split_is_refused(tmp_path):
    folder = tmp_path / "data" / "wikitext-2-raw-v1"
    folder.mkdir(parents=True)
    for split in ("train", "valid"):
        (folder / f"wiki.{split}.raw").write_text(" \n = A = \n some text here \n")
    cfg = get_profile("smoke", data_dir=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match="block_size=128"):
        train(cfg, tmp_path / "run")


def test_data_folder_without_the_files_is_refused(tmp_path):
    cfg = get_profile("smoke", data_dir=str(tmp_path))
    with pytest.raises(DataUnavailableError, match="wiki.train.raw"):
        train(cfg, tmp_path / "run")


@pytest.mark.parametrize("argv,needle", [
    (["train", "--profile", "nope"], "profile='nope'"),
    (["train", "--profile", "smoke", "--steps", "0"], "steps=0"),
    (["train", "--profile", "smoke", "--steps", "ten"], "steps='ten'"),
    (["train", "--profile", "smoke", "--lr", "-1"], "lr=-1.0"),
    (["train", "--profile", "smoke", "--tokenizer", "bpe"], "tokenizer='bpe'"),
])
def test_command_line_gives_one_clear_line_and_exit_code_2(argv, needle, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0 and "Traceback" not in err


def test_command_line_offline_without_data_is_fast_and_actionable(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "H2Q_DATA_DIR"}
    env["HF_HUB_OFFLINE"] = "1"
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "h2q_lib.cli", "train", "--profile", "smoke",
                          "--run-dir", str(tmp_path / "r")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "H2Q_DATA_DIR" in res.stderr and "Hugging Face hub" in res.stderr
    assert "Traceback" not in res.stderr
    assert time.time() - t0 < 30  # interpreter start and imports included; the check is < 2 s


@pytest.mark.slow
def test_papermill_with_a_bad_parameter_fails_naming_it(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="profile='nope'"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "02_train.ipynb"),
                                   str(tmp_path / "out.ipynb"), parameters={"profile": "nope"},
                                   cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
