"""Model, schedule, trainer, resume and multi-process training."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from h2q_lib.claims.completion_report import REPORT
from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import read_jsonl
from h2q_lib.data.tokenizers import CHAR_VOCAB_SIZE
from h2q_lib.model.gpt import GPT, GPTConfig, count_parameters, vocab_size_for_parameters
from h2q_lib.training import checkpoint as ckpt
from h2q_lib.training import hardware
from h2q_lib.training.hardware import choose_precision, pick_device
from h2q_lib.training.profiles import (
    PROFILES,
    RECIPE_FIELDS,
    RuntimeConfig,
    TrainConfig,
    get_profile,
    notebook_configs,
)
from h2q_lib.training.readings import lr_at
from h2q_lib.training.samples import REPORT_PROMPTS
from h2q_lib.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def tiny(data_dir, **kw):
    base = dict(n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32, batch_size=4,
                grad_accum=2, steps=8, warmup=2, eval_every=4, eval_batches=2, log_every=1,
                ckpt_every=4, sample_tokens=8)
    base.update(kw)
    return get_profile("smoke", **base)


def fast(data_dir) -> RuntimeConfig:
    # the kernels agree to rounding only: runs compared bit for bit fix one, as the precision
    return RuntimeConfig(data_dir=str(data_dir), quiet=True, precision="fp32", attention="sdpa")


def losses(run_dir):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_jsonl(run_dir / "log.jsonl")]


# --- model ----------------------------------------------------------------------------------


def test_report_architecture_has_the_reports_parameter_count_only_with_127_symbols():
    cfg = REPORT.model_config(CHAR_VOCAB_SIZE)
    assert GPT(cfg).num_parameters() == count_parameters(cfg) == REPORT.parameters
    assert count_parameters(REPORT.model_config(50_000)) == 51_082_240
    assert vocab_size_for_parameters(REPORT.parameters, REPORT.model_config()) == 127.0


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


def test_schedule_steps_stretch_the_cosine_beyond_the_steps_trained():
    prefix = get_profile("prefix")
    report = get_profile("report")
    assert prefix.steps == 500 and prefix.schedule_length == report.steps
    assert all(lr_at(s, prefix) == lr_at(s, report) for s in range(0, 6400, 97))
    squeezed = get_profile("report", steps=500, warmup=100)
    assert lr_at(499, squeezed) == pytest.approx(squeezed.min_lr, rel=1e-2)


def test_prefix_is_the_report_recipe_except_where_it_stops_and_its_training_text():
    prefix, report = get_profile("prefix").to_dict(), get_profile("report").to_dict()
    differs = {k for k in RECIPE_FIELDS if prefix[k] != report[k]}
    assert differs == {"steps", "schedule_steps", "train_data_config", "eval_every",
                       "ckpt_every"}
    assert report["steps"] * get_profile("report").tokens_per_step == REPORT.tokens_processed
    assert (report["n_embd"], report["n_layer"], report["n_head"], report["n_ff"],
            report["block_size"], report["lr"], report["warmup"]) == (
        REPORT.n_embd, REPORT.n_layer, REPORT.n_head, REPORT.n_ff, REPORT.seq_len,
        REPORT.learning_rate, REPORT.warmup_steps)
    assert 100 % prefix["eval_every"] == 0 and 500 % prefix["eval_every"] == 0
    assert set(PROFILES) == {"smoke", "prefix", "short400", "report"}


def test_short400_is_the_report_schedule_compressed_and_finished():
    short, report = get_profile("short400"), get_profile("report")
    assert (short.steps, short.schedule_length) == (400, 400)
    assert short.warmup / short.steps == pytest.approx(report.warmup / report.steps, abs=2e-3)
    assert lr_at(short.warmup - 1, short) == pytest.approx(short.lr)
    assert lr_at(short.steps, short) == pytest.approx(short.min_lr)


# --- readings of the schedule ---------------------------------------------------------------


def test_stated_reading_is_what_runs_prefix_trained():
    """The stated reading is the default and changes no rate of the schedule before it."""
    stated, default = get_profile("prefix", reading="stated"), get_profile("prefix")
    assert default.reading == "stated"
    assert [lr_at(s, stated) for s in range(0, 6400, 37)] == [
        lr_at(s, default) for s in range(0, 6400, 37)]
    assert lr_at(499, stated) == pytest.approx(6e-4 * 500 / 2000)


def test_micro_batch_reading_warms_up_in_micro_batches_and_then_holds():
    cfg = get_profile("prefix", reading="micro-batch")
    assert cfg.grad_accum == 4
    assert lr_at(0, cfg) == pytest.approx(6e-4 * 4 / 2000)  # four scheduler steps done
    assert lr_at(499, cfg) == pytest.approx(6e-4)  # warm-up over at optimizer step 500
    end = -(-cfg.schedule_length // cfg.grad_accum)  # ceil(6350 / 4) = 1,588
    assert end == 1588
    assert lr_at(end - 1, cfg) == pytest.approx(cfg.min_lr, rel=1e-4)
    assert all(lr_at(s, cfg) == cfg.min_lr for s in range(end, 6350, 101))
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(500, 2000))


def test_micro_batch_cosine_reading_climbs_back_after_the_schedule():
    hold = get_profile("prefix", reading="micro-batch")
    cosine = get_profile("prefix", reading="micro-batch-cosine")
    assert [lr_at(s, hold) for s in range(1587)] == [lr_at(s, cosine) for s in range(1587)]
    # one more cosine half-period (4,350 micro-batches) later the rate is back at its peak
    peak = (2000 + 2 * 4350) // 4 - 1  # position 10,699 of the 10,700-long period
    assert lr_at(peak, cosine) == pytest.approx(cosine.lr, rel=1e-4)
    assert lr_at(peak, hold) == hold.min_lr


def test_an_unknown_reading_is_one_line():
    with pytest.raises(ConfigError, match="reading='per-epoch'.*stated, micro-batch"):
        get_profile("prefix", reading="per-epoch")


def test_recipe_and_runtime_fields_are_apart_and_validated():
    with pytest.raises(ConfigError, match="override='device'"):
        get_profile("smoke", device="cpu")
    with pytest.raises(ConfigError, match="seed=-1"):
        get_profile("smoke", seed=-1)
    with pytest.raises(ConfigError, match="temperature=nan"):
        get_profile("smoke", temperature=float("nan"))
    with pytest.raises(ConfigError, match="schedule_steps=0"):
        get_profile("smoke", schedule_steps=0)
    with pytest.raises(ConfigError, match="threads=-1"):
        RuntimeConfig(threads=-1).validate()
    with pytest.raises(ConfigError, match="unknown"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "unknown": 1})


@pytest.mark.parametrize("overrides", ['{"steps": 50}', "steps: 50", {"steps": 50}])
def test_notebook_overrides_accept_a_mapping_or_a_json_or_yaml_string(overrides):
    cfg, runtime = notebook_configs("smoke", overrides, device="cpu", quiet=True)
    assert cfg.steps == 50 and runtime.device == "cpu" and runtime.quiet


@pytest.mark.parametrize("overrides, match", [
    ('{"device": "cpu"}', "overrides='device'.*notebook parameter"),
    ('{"quiet": false}', "overrides='quiet'"),
    ("[1, 2]", "a mapping"),
    ('{"stepz": 3}', "overrides='stepz'"),
    ("{bad json", "a mapping"),
])
def test_bad_notebook_overrides_give_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match):
        notebook_configs("smoke", overrides, device="cpu", quiet=True)


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


def test_precision_rule_picks_bf16_on_the_cpu_only_where_it_is_faster():
    slow = choose_precision("cpu", "auto", speedup=lambda: 0.02)  # AVX2: emulated bf16
    assert slow.precision == "fp32" and "0.02x" in slow.reason
    fast_ = choose_precision("cpu", "auto", speedup=lambda: 3.5)  # AVX-512 BF16 / AMX
    assert fast_.precision == "bf16" and "3.50x" in fast_.reason
    edge = choose_precision("cpu", "auto", speedup=lambda: hardware.BF16_MIN_SPEEDUP - 0.01)
    assert edge.precision == "fp32"
    assert choose_precision("cpu", "bf16", speedup=lambda: 0.01).precision == "bf16"
    assert choose_precision("mps").precision == "fp16"
    with pytest.raises(ConfigError, match="precision='fp16'"):
        choose_precision("cpu", "fp16")


def test_measured_bf16_speedup_is_a_positive_ratio():
    assert hardware.measured_bf16_speedup(torch.get_num_threads()) > 0


def test_training_without_bf16_runs_in_fp32_and_says_why(tmp_path, data_dir, monkeypatch,
                                                         capsys):
    monkeypatch.setattr(hardware, "measured_bf16_speedup", lambda threads=None: 0.02)
    summary = train(tiny(data_dir, steps=4), tmp_path / "run",
                    RuntimeConfig(data_dir=str(data_dir), quiet=True))
    assert "precision fp32 on cpu: CPU" in capsys.readouterr().out
    assert summary["precision"] == "fp32"
    assert "0.02x" in summary["precision_reason"]
    assert summary["sessions"][0]["precision"] == "fp32"


# --- trainer --------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path, data_dir):
    cfg = tiny(data_dir, steps=12)
    summary = train(cfg, tmp_path / "run", fast(data_dir))
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.5
    assert summary["tokens_seen"] == 12 * 4 * 2 * 32
    evals = [r for r in log if r["val_loss"] is not None]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert all(r["perplexity"] == pytest.approx(math.exp(r["val_loss"])) for r in evals)
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert {(s["step"], s["prompt"]) for s in samples} == {
        (s, p) for s in (4, 8, 12) for p in REPORT_PROMPTS}
    assert all(s["text"].startswith(s["prompt"]) for s in samples)


def test_checkpoint_contents(tmp_path, data_dir):
    run = tmp_path / "run"
    train(tiny(data_dir), run, fast(data_dir))
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["best.pt", "step_000004.pt", "step_000008.pt"]
    payload = ckpt.read_training(run / "checkpoints" / "step_000004.pt")
    assert {"model", "optimizer", "scaler", "torch_rng", "meta"} <= set(payload)
    assert payload["meta"]["step"] == 4
    assert payload["meta"]["recipe"] == json.loads((run / "config.json").read_text())
    assert payload["meta"]["model_args"]["n_embd"] == 32
    assert payload["meta"]["tokenizer"]["name"] == "char"
    assert len(payload["optimizer"]["state"]) > 0
    state, meta = ckpt.load_weights(run / "final_model.safetensors")
    assert meta["step"] == 8 and "optimizer" not in meta
    model, tok, _ = ckpt.load_model(run / "final_model.safetensors")
    assert tok.vocab_size == 127 and model.num_parameters() == count_parameters(model.config)
    best = ckpt.read_training(run / "checkpoints" / "best.pt")["meta"]
    evals = [r for r in read_jsonl(run / "log.jsonl") if r["val_loss"] is not None]
    assert best["best_val_loss"] == min(r["val_loss"] for r in evals)


def test_a_finished_run_without_its_weights_is_read_not_retrained(tmp_path, data_dir):
    """A committed run folder keeps records, not weights: re-running it loses nothing."""
    rt = fast(data_dir)
    first = train(tiny(data_dir), tmp_path / "run", rt)
    records = {n: (tmp_path / "run" / n).read_bytes()
               for n in ("log.jsonl", "samples.jsonl", "summary.json", "config.json")}
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    (tmp_path / "run" / "final_model.safetensors").unlink()
    assert train(tiny(data_dir), tmp_path / "run", rt) == first
    assert {n: (tmp_path / "run" / n).read_bytes() for n in records} == records
    assert not (tmp_path / "run" / "final_model.safetensors").exists()


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, data_dir):
    rt = fast(data_dir)
    train(tiny(data_dir), tmp_path / "straight", rt)
    assert train(tiny(data_dir), tmp_path / "split", rt, stop_after=5) == {"stopped_at": 5}
    assert max(r["step"] for r in read_jsonl(tmp_path / "split" / "log.jsonl")) == 5
    train(tiny(data_dir), tmp_path / "split", rt)  # resumes from step 4, redoes step 5
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")
    again = train(tiny(data_dir), tmp_path / "split", rt)  # finished: returns the summary
    assert again["steps"] == 8
    sessions = again["sessions"]
    assert [(x["from_step"], x["to_step"]) for x in sessions] == [(0, 4), (4, 8)]


def test_extend_continues_a_finished_run_on_the_same_schedule(tmp_path, data_dir):
    rt = fast(data_dir)
    long = tiny(data_dir, steps=8, schedule_steps=8)
    train(long, tmp_path / "straight", rt)
    train(tiny(data_dir, steps=4, schedule_steps=8), tmp_path / "grown", rt)
    train(long, tmp_path / "grown", rt, extend=True)
    assert losses(tmp_path / "grown") == losses(tmp_path / "straight")


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


# --- the micro-batch split (a runtime choice, not the recipe) -------------------------------

# fp32 sums the gradient in a different order. AdamW divides by the gradient's own scale,
# so where a gradient is near zero that rounding is magnified up to the learning rate itself
# (Adam moves a weight by at most about lr a step): the splits must agree to 1 % of that.
SPLIT_TOLERANCE_OF_LR = 0.01


def test_two_micro_batch_splits_give_the_same_update(tmp_path, data_dir):
    # the recipe's 4 x 2 = 8 sequences a step, cut as 4 x 2 (its own), 8 x 1 and 2 x 4
    cfg = tiny(data_dir, steps=2, eval_every=2, ckpt_every=2, sample_tokens=0)
    weights, step_losses = {}, {}
    for micro in (0, 8, 2):
        run = tmp_path / f"micro{micro}"
        rt = dataclasses.replace(fast(data_dir), micro_batch=micro)
        summary = train(cfg, run, rt)
        weights[micro] = ckpt.load_weights(run / "final_model.safetensors")[0]
        step_losses[micro] = [r["train_loss"] for r in read_jsonl(run / "log.jsonl")]
        assert summary["sessions"][-1]["micro_batch"] == (micro or 4)
    for micro in (8, 2):
        assert step_losses[micro] == pytest.approx(step_losses[0], rel=1e-5)
        for name, tensor in weights[0].items():
            torch.testing.assert_close(weights[micro][name], tensor, rtol=0,
                                       atol=SPLIT_TOLERANCE_OF_LR * cfg.lr * cfg.steps)


def test_a_micro_batch_that_does_not_divide_the_step_is_refused(tmp_path, data_dir):
    rt = dataclasses.replace(fast(data_dir), micro_batch=3)
    with pytest.raises(ConfigError, match="micro_batch=3.*a divisor of the 8 sequences"):
        train(tiny(data_dir), tmp_path / "run", rt)
    assert not (tmp_path / "run").exists()  # refused before anything was made
    with pytest.raises(ConfigError, match="micro_batch"):
        RuntimeConfig(micro_batch=-1).validate()
