"""The attention kernels (``model.attention``) and the rule that picks one at a run's start
(``training.attention_rule``), issue #39."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from h2q_lib.core.errors import ConfigError
from h2q_lib.model.attention import (
    KERNELS,
    blocked_causal_attention,
    causal_attention,
    explicit_causal_attention,
)
from h2q_lib.model.gpt import GPT, GPTConfig
from h2q_lib.training.attention_rule import (
    attention_under_autocast,
    choose_attention,
    pick_kernel,
    probe_attention,
    session_attention,
)
from h2q_lib.training.profiles import RuntimeConfig, get_profile
from h2q_lib.training.recipe_identity import recipe_sha256
from h2q_lib.training.trainer import train

SMALL = GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=32, n_ff=64)


def qkv(dtype=torch.float64, shape=(2, 4, 32, 16)):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=dtype).requires_grad_() for _ in range(3)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_computes_causal_attention_and_its_gradient(kernel):
    q, k, v = qkv()
    t = q.size(-2)
    future = torch.ones(t, t, dtype=torch.bool).triu(1)  # the formula, from scratch
    want = ((q @ k.transpose(-1, -2)) / q.size(-1) ** 0.5).masked_fill(
        future, float("-inf")).softmax(-1) @ v
    got = causal_attention(q, k, v, kernel)
    torch.testing.assert_close(got, want)
    grad_out = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, (q, k, v), grad_out),
                               torch.autograd.grad(want, (q, k, v), grad_out))


@pytest.mark.parametrize("kernel", KERNELS)
def test_in_bf16_every_kernel_stays_within_the_bf16_tolerance_of_fp32(kernel):
    q, k, v = qkv(torch.float32)
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    low = causal_attention(*(x.detach().bfloat16() for x in (q, k, v)), kernel)
    # bf16 keeps 8 bits of mantissa: 2^-8 relative, on values of order one
    torch.testing.assert_close(low.float(), exact, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize(("t", "blocks"), [(1, 2), (3, 2), (33, 2), (33, 3), (4, 7), (32, 1)])
def test_the_blocked_form_matches_the_written_out_form_at_any_length(t, blocks):
    # lengths a generation step or a short last window gives, and more blocks than queries
    q, k, v = qkv(shape=(2, 3, t, 8))
    want = explicit_causal_attention(q, k, v)
    got = blocked_causal_attention(q, k, v, blocks=blocks)
    torch.testing.assert_close(got, want)
    grad_out = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, (q, k, v), grad_out),
                               torch.autograd.grad(want, (q, k, v), grad_out))


def test_the_probe_runs_a_kernel_under_the_runs_autocast():
    q, k, v = qkv(torch.float32)
    exact = causal_attention(q, k, v, "explicit_blocked")
    low = attention_under_autocast(q, k, v, "explicit_blocked", "cpu", "bf16")
    assert low.dtype == torch.float32  # handed back in the inputs' type
    assert (low - exact).abs().max() > 1e-4  # computed in bf16: autocast was on
    torch.testing.assert_close(low, exact, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(attention_under_autocast(q, k, v, "explicit", "cpu", "fp32"),
                               causal_attention(q, k, v, "explicit"))


def test_the_model_gives_the_same_loss_through_every_kernel():
    torch.manual_seed(0)
    model = GPT(SMALL).eval()
    idx = torch.randint(0, SMALL.vocab_size, (3, SMALL.block_size))
    losses = {kernel: model.set_attention(kernel)(idx, idx)[1].item() for kernel in KERNELS}
    assert max(losses.values()) - min(losses.values()) < 1e-5, losses
    assert "kernel" not in " ".join(model.state_dict())  # how, not what: weights unchanged


def test_an_unknown_kernel_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"attention.*'flash'.*sdpa, sdpa_math, explicit"):
        GPT(SMALL).set_attention("flash")
    with pytest.raises(ConfigError, match="attention"):
        RuntimeConfig(attention="flash").validate()
    with pytest.raises(ConfigError, match="attention"):
        choose_attention(SMALL, 2, "cpu", "fp32", "flash")


def passes(**medians):
    """Five passes a kernel, each within 1 % of its median."""
    return {k: [m * f for f in (0.99, 1.0, 1.0, 1.0, 1.01)] for k, m in medians.items()}


def test_the_rule_keeps_the_default_when_it_is_fastest():
    assert pick_kernel(passes(sdpa=100, sdpa_math=120, explicit=110))[0] == "sdpa"


def test_the_rule_takes_a_kernel_clearly_faster_than_the_default():
    # the EPYC: SDPA 106.2 ms, math 124.4 ms, written out 66.9 ms
    kernel, reason = pick_kernel(passes(sdpa=106.2, sdpa_math=124.4, explicit=66.9))
    assert kernel == "explicit" and "37% faster than sdpa" in reason


def test_the_rule_keeps_the_default_within_the_minimum_gain():
    kernel, reason = pick_kernel(passes(sdpa=100, sdpa_math=120, explicit=97))
    assert kernel == "sdpa" and "sdpa is kept" in reason


def test_the_rule_keeps_the_default_within_the_probes_noise():
    noisy = passes(sdpa=100, sdpa_math=150)
    noisy["explicit"] = [50, 80, 85, 90, 95]  # 15 % faster by median, spread 53 % of it
    kernel, reason = pick_kernel(noisy)
    assert kernel == "sdpa" and "margin of 53%" in reason


def test_a_kernel_asked_for_by_name_is_used_without_a_probe():
    def probe(*_):
        raise AssertionError("a kernel asked for by name needs no measurement")

    choice = choose_attention(SMALL, 2, "cpu", "fp32", "explicit", probe=probe)
    assert (choice.kernel, choice.probe_ms) == ("explicit", None)


def test_the_probe_times_every_kernel_forward_and_backward():
    measured = probe_attention(SMALL, 2, "cpu", "fp32", passes=2)
    assert set(measured) == set(KERNELS)
    assert all(len(v) == 2 and all(ms > 0 for ms in v) for v in measured.values())
    choice = choose_attention(SMALL, 2, "cpu", "fp32", probe=lambda *a: measured)
    assert choice.kernel in KERNELS and set(choice.probe_ms) == set(KERNELS)


def test_a_resumed_run_keeps_its_kernel_unless_another_is_named():
    def probe(*_):
        raise AssertionError("a resumed run with auto is not measured again")

    meta = {"attention": "explicit", "step": 40}
    kept = session_attention(SMALL, 2, "cpu", "fp32", "auto", meta, probe=probe)
    assert kept.kernel == "explicit" and "step 40" in kept.reason
    assert session_attention(SMALL, 2, "cpu", "fp32", "sdpa", meta).kernel == "sdpa"
    before_the_rule = session_attention(SMALL, 2, "cpu", "fp32", "auto", {"step": 4},
                                        probe=lambda *a: passes(sdpa=1, sdpa_math=2,
                                                                explicit=3))
    assert before_the_rule.kernel == "sdpa"


def test_a_run_records_its_kernel_and_keeps_its_recipe_hash(tmp_path, data_dir):
    cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                      batch_size=4, grad_accum=2, steps=4, warmup=2, eval_every=2,
                      eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0)
    runtime = RuntimeConfig(data_dir=str(data_dir), quiet=True, precision="fp32",
                            attention="explicit")
    summary = train(cfg, tmp_path / "run", runtime, stop_after=2)
    assert summary == {"stopped_at": 2}
    # resumed with auto: the run's own kernel, not a new measurement
    summary = train(cfg, tmp_path / "run", RuntimeConfig(**{**runtime.to_dict(),
                                                            "attention": "auto"}))
    assert summary["attention"] == "explicit"
    assert [s["attention"] for s in summary["sessions"]] == ["explicit", "explicit"]
    assert "kept from the run's checkpoint at step 2" in summary["sessions"][1][
        "attention_reason"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "attention" not in config and recipe_sha256(cfg) == recipe_sha256(
        type(cfg).from_dict(config))
