"""Model, schedule, trainer, resume and multi-process training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from h2q_lib import checkpoint as ckpt
from h2q_lib import train as train_mod
from h2q_lib.errors import ConfigError
from h2q_lib.model import GPT, GPTConfig, count_parameters, vocab_size_for_parameters
from h2q_lib.profiles import PROFILES, get_profile
from h2q_lib.train import lr_at, pick_device, pick_precision, read_jsonl, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(data_dir, **kw):
    base = dict(n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32, batch_size=4,
                grad_accum=2, steps=8, warmup=2, eval_every=4, eval_batches=2, log_every=1,
                ckpt_every=4, sample_tokens=8, quiet=True, data_dir=str(data_dir))
    base.update(kw)
    return get_profile("smoke", **base)


def losses(run_dir):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_jsonl(run_dir / "log.jsonl")]


# --- model ----------------------------------------------------------------------------------


def test_report_architecture_has_the_reports_parameter_count_only_with_127_symbols():
    cfg = GPTConfig(vocab_size=127)
    assert GPT(cfg).num_parameters() == count_parameters(cfg) == 25_547_264
    assert count_parameters(GPTConfig(vocab_size=50_000)) == 51_082_240
    assert vocab_size_for_parameters(25_547_264, GPTConfig()) == 127.0


@pytest.mark.parametrize("kw", [dict(vocab_size=11, n_layer=1, n_embd=16, n_head=2, n_ff=40,
                                     block_size=7),
                                dict(vocab_size=300, n_layer=3, n_embd=24, n_head=3, n_ff=10,
                                     block_size=64)])
def test_analytic_count_equals_module_count(kw):
    cfg = GPTConfig(**kw)
    assert GPT(cfg).num_parameters() == count_parameters(cfg)


def test_lm_head_is_tied_to_the_embedding():
    m = GPT(GPTConfig(vocab_size=20, n_layer=1, n_embd=16, n_head=2, n_ff=32, block_size=8))
    assert m.lm_head.weight.data_ptr() == m.tok_emb.weight.data_ptr()


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=30, n_layer=2, n_embd=32, n_head=4, n_ff=64, block_size=16))
    x = torch.randint(0, 30, (4, 16))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss = m(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.0 and loss.item() < 0.05


def test_context_longer_than_the_model_is_refused_by_name():
    m = GPT(GPTConfig(vocab_size=10, n_layer=1, n_embd=8, n_head=2, n_ff=8, block_size=4))
    with pytest.raises(ConfigError, match="sequence length=5.*block_size=4"):
        m(torch.zeros(1, 5, dtype=torch.long))


# --- schedule and devices -------------------------------------------------------------------


def test_warmup_then_cosine_values():
    cfg = get_profile("report")
    assert lr_at(0, cfg) == pytest.approx(6e-4 / 2000)
    assert lr_at(999, cfg) == pytest.approx(6e-4 * 1000 / 2000)
    assert lr_at(1999, cfg) == pytest.approx(6e-4)
    mid = 2000 + (6350 - 2000) // 2
    assert lr_at(mid, cfg) == pytest.approx((6e-4 + 6e-5) / 2, rel=1e-3)
    assert lr_at(6350, cfg) == pytest.approx(6e-5)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(2000, 6350))


def test_cpu_profile_keeps_the_reports_architecture_batch_and_warmup_fraction():
    cpu, report = get_profile("cpu"), get_profile("report")
    for f in ("n_layer", "n_head", "n_embd", "n_ff", "block_size", "batch_size", "grad_accum",
              "lr"):
        assert getattr(cpu, f) == getattr(report, f)
    assert cpu.warmup / cpu.steps == pytest.approx(2000 / 6350, abs=0.01)
    assert report.steps * report.tokens_per_step == 104_038_400
    assert set(PROFILES) == {"smoke", "cpu", "report"}


def test_device_auto_prefers_mps_then_cuda_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="device='mps'.*cpu"):
        pick_device("mps")
    assert pick_precision("mps") == "fp16"
    assert pick_precision("cuda") == pick_precision("cpu") == "bf16"
    assert pick_precision("cpu", "fp32") == "fp32"


# --- trainer --------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path, data_dir):
    cfg = tiny(data_dir, steps=12)
    summary = train(cfg, tmp_path / "run")
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.5
    assert summary["tokens_seen"] == 12 * 4 * 2 * 32
    evals = [r for r in log if r["val_loss"] is not None]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert all(r["perplexity"] == pytest.approx(math.exp(r["val_loss"])) for r in evals)
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert {(s["step"], s["prompt"]) for s in samples} == {
        (s, p) for s in (4, 8, 12) for p in train_mod.REPORT_PROMPTS}
    assert all(s["text"].startswith(s["prompt"]) for s in samples)


def test_checkpoint_contents(tmp_path, data_dir):
    run = tmp_path / "run"
    train(tiny(data_dir), run)
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["best.pt", "step_000004.pt", "step_000008.pt"]
    payload = ckpt.read_training(run / "checkpoints" / "step_000004.pt")
    assert {"model", "optimizer", "scaler", "torch_rng", "meta"} <= set(payload)
    assert payload["meta"]["step"] == 4
    assert payload["meta"]["config"]["steps"] == 8
    assert payload["meta"]["tokenizer"]["name"] == "char"
    assert len(payload["optimizer"]["state"]) > 0
    state, meta = ckpt.load_weights(run / "final_model.safetensors")
    assert meta["step"] == 8 and "optimizer" not in meta
    model, tok, _ = ckpt.load_model(run / "final_model.safetensors")
    assert tok.vocab_size == 127 and model.num_parameters() == count_parameters(model.config)
    best = ckpt.read_training(run / "checkpoints" / "best.pt")["meta"]
    evals = [r for r in read_jsonl(run / "log.jsonl") if r["val_loss"] is not None]
    assert best["best_val_loss"] == min(r["val_loss"] for r in evals)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, data_dir):
    train(tiny(data_dir), tmp_path / "straight")
    assert train(tiny(data_dir), tmp_path / "split", stop_after=5) == {"stopped_at": 5}
    assert max(r["step"] for r in read_jsonl(tmp_path / "split" / "log.jsonl")) == 5
    train(tiny(data_dir), tmp_path / "split")  # resumes from step 4, redoes step 5
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")
    again = train(tiny(data_dir), tmp_path / "split")  # finished: returns the summary
    assert again["steps"] == 8


def test_diverging_loss_stops_with_the_step_and_keeps_best(tmp_path, data_dir, monkeypatch):
    run = tmp_path / "run"
    train(tiny(data_dir, steps=4), run)
    best_before = (run / "checkpoints" / "best.pt").read_bytes()
    real_forward = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None):
        out = real_forward(self, idx, targets)
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] > 2 * 2:  # two steps of 2 micro-batches, then NaN
                return out[0], out[1] * float("nan")
        return out

    monkeypatch.setattr(GPT, "forward", forward)
    with pytest.raises(train_mod.TrainingDivergedError, match="at step 7"):
        train(tiny(data_dir, steps=8), run)
    assert (run / "checkpoints" / "best.pt").read_bytes() == best_before
    assert ckpt.read_training(run / "checkpoints" / "step_000004.pt")["meta"]["step"] == 4


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path, data_dir):
    flags = ["--profile", "smoke", "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
             "--n-ff", "64", "--block-size", "32", "--batch-size", "4", "--grad-accum", "2",
             "--steps", "6", "--warmup", "2", "--eval-every", "3", "--eval-batches", "2",
             "--log-every", "1", "--ckpt-every", "6", "--sample-tokens", "0",
             "--precision", "fp32", "--quiet", "true", "--threads", "1",
             "--data-dir", str(data_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "h2q_lib.cli", "train", *flags,
                             "--run-dir", str(tmp_path / "one")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2", "-m", "h2q_lib.cli", "train", *flags,
                            "--run-dir", str(tmp_path / "two")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-8000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _, _ in one] == [s for s, _, _ in two] == list(range(1, 7))
    for (_, a, va), (_, b, vb) in zip(one, two, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
        assert (va is None) == (vb is None)
        if va is not None:
            assert vb == pytest.approx(va, rel=1e-4)
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def test_attention_lets_the_model_copy_from_its_context():
    """A second half that repeats the first is predictable only by attending back."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=20, n_layer=2, n_embd=64, n_head=4, n_ff=128, block_size=32))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(250):
        a = torch.randint(2, 20, (32, 16))
        x = torch.cat([a, a], dim=1)
        targets = x[:, 1:].clone()
        targets[:, :15] = -100  # the first half is random: not scored
        logits = m(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), targets.reshape(-1),
                                                 ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 < math.log(18)
