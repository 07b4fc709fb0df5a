"""The step profile and the transformers peer the benchmark compares with (no timing asserted)."""

from __future__ import annotations

import pytest
import torch

from h2q_lib.bench import evaluation_speed, matmul_speed, peer_speed, profiling
from h2q_lib.bench.transformers_peer import TransformersPeer
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.model.gpt import GPT, GPTConfig, count_parameters
from h2q_lib.training import timing

TINY = GPTConfig(vocab_size=11, n_layer=2, n_embd=32, n_head=2, n_ff=64, block_size=16)


@pytest.mark.parametrize(("name", "ranges", "category"), [
    ("aten::addmm", (), "matrix products"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", (), "attention"),
    ("aten::_log_softmax", (), "cross-entropy"),
    ("aten::bmm", (), "attention"),  # the written-out kernels' q·kᵀ and ·v
    ("aten::_softmax_backward_data", (), "attention"),
    ("aten::native_layer_norm_backward", (), "LayerNorm"),
    ("aten::_to_copy", (), "casts and copies"),
    ("aten::mul", ("optimizer",), "optimizer"),  # inside a range, the range decides
    ("aten::add", (), profiling.OTHER),
])
def test_operators_fall_into_their_category(name, ranges, category):
    assert profiling.category_of(name, (name, *ranges)) == category


def test_training_profile_accounts_for_the_whole_step_and_every_matrix_flop():
    parts = profiling.profile_training_step(TINY, "cpu", "fp32", 2, 2, limit=1e10)["parts"]
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0)
    assert {"data", "optimizer", "matrix products", "attention"} <= set(parts)
    # forward 2·N_linear a token, backward twice that, over 2 × 2 sequences of 16 tokens
    tokens = 2 * 2 * TINY.block_size
    linear = evaluation_speed.linear_flops_per_token(TINY)
    assert parts["matrix products"]["flops"] == 3 * linear * tokens
    assert parts["matrix products"]["of_limit"] > 0


@pytest.mark.parametrize("kernel", ["explicit", "explicit_blocked"])
def test_a_written_out_kernels_products_are_attention_not_the_linear_layers(kernel):
    parts = profiling.profile_training_step(TINY, "cpu", "fp32", 2, 2, limit=1e10,
                                            attention=kernel)["parts"]
    linear = evaluation_speed.linear_flops_per_token(TINY)
    assert parts["matrix products"]["flops"] == 3 * linear * 2 * 2 * TINY.block_size
    assert parts["attention"]["seconds"] > 0
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0)


def test_eval_profile_counts_the_forward_matrix_flops():
    profile = profiling.profile_eval_batch(TINY, "cpu", "fp32", 2, limit=1e10)
    parts = profile["parts"]
    linear = evaluation_speed.linear_flops_per_token(TINY)
    assert parts["matrix products"]["flops"] == linear * 2 * 16
    assert "optimizer" not in parts and profile["tokens_per_s"] > 0


def test_the_peer_has_the_report_models_shape_and_parameter_count():
    cfg = REPORT.model_config(127)
    peer = TransformersPeer(cfg)
    assert sum(p.numel() for p in peer.parameters()) == count_parameters(cfg) == 25_547_264
    assert peer.gpt2.config.activation_function == "gelu"  # exact GELU, as model.GPT


def test_the_peer_is_called_like_the_model():
    torch.manual_seed(0)
    x = torch.randint(0, TINY.vocab_size, (2, TINY.block_size))
    peer, ours = TransformersPeer(TINY), GPT(TINY)
    logits, loss = peer(x, x)
    assert logits.shape == ours(x).shape == peer(x).shape
    assert loss.ndim == 0 and torch.isfinite(loss)
    side_by_side = peer_speed.peer_comparison(TINY, "cpu", "fp32", batch=2, accum=1, rounds=2)
    assert side_by_side["transformers_parameters"] == ours.num_parameters()
    for work in ("train", "eval"):
        low, high = side_by_side[f"{work}_over_transformers_range"]
        assert 0 < low <= side_by_side[f"{work}_over_transformers"] <= high
        assert side_by_side[f"transformers_{work}_tokens_per_s"] > 0
        assert side_by_side[f"ours_{work}_tokens_per_s_paired"] > 0


def test_paired_steps_take_turns_in_alternating_order():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("ours", "theirs")}
    seconds = timing.paired_step_seconds(steps, rounds=3, device="cpu")
    assert {name: len(s) for name, s in seconds.items()} == {"ours": 3, "theirs": 3}
    # one warm-up call each, then rounds in order, reversed, in order
    assert calls == ["ours", "theirs", "ours", "theirs", "theirs", "ours", "ours", "theirs"]


def test_the_limit_is_the_best_of_a_square_and_the_models_shapes(monkeypatch):
    seen = []

    def fake_rate(device, dtype, n=None, repeats=3, shape=None):
        seen.append(shape)
        return 1e11 if shape == (64, 32, 96) else 1e10  # the qkv product fastest

    monkeypatch.setattr(matmul_speed, "matmul_rate", fake_rate)
    assert matmul_speed.matmul_limit("cpu", torch.float32, TINY, rows=64) == 1e11
    assert (1024, 1024, 1024) in seen and (64, 64, 32) in seen  # square and FF down
