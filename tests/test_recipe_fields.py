"""Recipe fields for the settings the report leaves unsaid (issue #33, run N4): the
initialisation, AdamW's β₂, what weight decay applies to, and no gradient clipping. Each is
data in the recipe, checked on resume; at its default a recipe hashes as it did before the
field existed, so committed runs and their checkpoints keep their identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from h2q_lib.core.errors import ConfigError
from h2q_lib.model.gpt import GPT
from h2q_lib.training.optimizer import build_optimizer, initialize
from h2q_lib.training.profiles import ADDED_FIELDS, RuntimeConfig, TrainConfig, get_profile
from h2q_lib.training.recipe_identity import recipe_sha256
from h2q_lib.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
PYTORCH_DEFAULTS = {"init": "pytorch", "adam_beta2": 0.999, "decay_scope": "all",
                    "weight_decay": 0.01, "grad_clip": 0.0}


def _hash_before_the_fields(cfg: TrainConfig) -> str:
    """``recipe_sha256`` as it was computed before ``ADDED_FIELDS`` existed."""
    fields = {k: v for k, v in cfg.to_dict().items() if k not in ADDED_FIELDS}
    fields["schedule_steps"] = cfg.schedule_length
    del fields["steps"]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("config", sorted((ROOT / "runs").glob("*/config.json")),
                         ids=lambda p: p.parent.name)
def test_every_committed_run_keeps_its_recipe_hash(config):
    """At the added fields' defaults a run hashes as before the fields existed; a run away
    from them (N4, PyTorch's defaults) is another recipe and hashes otherwise."""
    cfg = TrainConfig.from_dict(json.loads(config.read_text()))
    at_defaults = {name: getattr(cfg, name) for name in ADDED_FIELDS} == ADDED_FIELDS
    assert (recipe_sha256(cfg) == _hash_before_the_fields(cfg)) == at_defaults


@pytest.mark.parametrize(("name", "value"), [("init", "pytorch"), ("adam_beta2", 0.999),
                                             ("decay_scope", "all")])
def test_an_added_field_away_from_its_default_is_another_recipe(name, value):
    cfg = get_profile("prefix")
    assert recipe_sha256(dataclasses.replace(cfg, **{name: value})) != recipe_sha256(cfg)


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("init", "xavier", "one of gpt2, pytorch"), ("decay_scope", "biases", "one of matrices, all"),
    ("adam_beta2", 1.0, "a number in (0, 1)"), ("adam_beta2", True, "a number in (0, 1)"),
    ("grad_clip", -1.0, "a finite number >= 0")])
def test_bad_values_are_one_line(name, value, allowed):
    with pytest.raises(ConfigError, match=rf"^{name}=.* is not allowed: expected .*") as e:
        get_profile("smoke", **{name: value})
    assert allowed in str(e.value) and "\n" not in str(e.value)


def test_pytorch_init_gives_every_module_torchs_default():
    cfg = get_profile("smoke", n_layer=2, n_embd=128, n_head=4, n_ff=256, block_size=128)
    torch.manual_seed(0)
    gpt2 = initialize(GPT(cfg.model_config(100)), cfg)
    torch.manual_seed(0)
    model = initialize(GPT(cfg.model_config(100)), dataclasses.replace(cfg, init="pytorch"))
    assert gpt2.pos_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.pos_emb.weight.std().item() == pytest.approx(1.0, rel=0.1)  # nn.Embedding
    bound = 1 / cfg.n_embd ** 0.5  # nn.Linear: Kaiming-uniform, a = √5
    up = model.blocks[0].ff.up
    assert up.weight.abs().max().item() <= bound and up.weight.std().item() > 0.5 * bound / 3**.5
    assert up.bias.abs().max().item() > 0  # GPT-2's biases start at zero
    assert model.lm_head.weight is model.tok_emb.weight  # still tied: the head's init
    assert model.tok_emb.weight.abs().max().item() <= bound
    assert torch.equal(model.blocks[0].ln1.weight, torch.ones(cfg.n_embd))


def test_the_optimizer_follows_beta2_and_what_weight_decay_applies_to():
    cfg = get_profile("smoke")
    model = GPT(cfg.model_config(50))
    default = build_optimizer(model, cfg, "cpu")
    assert default.param_groups[0]["betas"] == (0.9, 0.95)
    assert all(p.dim() >= 2 for p in default.param_groups[0]["params"])
    assert default.param_groups[1]["weight_decay"] == 0.0 and default.param_groups[1]["params"]
    torch_like = build_optimizer(model, dataclasses.replace(cfg, **PYTORCH_DEFAULTS), "cpu")
    decayed, other = torch_like.param_groups
    assert decayed["betas"] == (0.9, 0.999) and decayed["weight_decay"] == 0.01
    assert len(decayed["params"]) == len(list(model.parameters())) and not other["params"]


def test_a_run_with_torchs_defaults_trains_records_them_and_is_checked_on_resume(tmp_path,
                                                                                data_dir):
    cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                      batch_size=4, grad_accum=1, steps=2, warmup=0, eval_every=2,
                      eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0,
                      **PYTORCH_DEFAULTS)
    runtime = RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu",
                            precision="fp32", attention="sdpa")
    summary = train(cfg, tmp_path / "run", runtime)
    assert summary["steps"] == 2
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {k: written[k] for k in PYTORCH_DEFAULTS} == PYTORCH_DEFAULTS
    with pytest.raises(Exception, match=r"init 'pytorch' -> 'gpt2'"):
        train(dataclasses.replace(cfg, init="gpt2", steps=3), tmp_path / "run", runtime,
              extend=True)


def test_a_committed_run_folder_written_before_the_fields_is_read_byte_for_byte(tmp_path,
                                                                               data_dir):
    """Reading a finished run whose ``config.json`` predates the added fields (every committed
    run) rewrote the file with them; a committed folder is read, never written."""
    cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                      batch_size=4, grad_accum=1, steps=2, warmup=0, eval_every=2,
                      eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=0)
    runtime = RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu",
                            precision="fp32", attention="sdpa")
    run = tmp_path / "run"
    train(cfg, run, runtime)
    for name in ("checkpoints", "token_cache"):  # as committed: records only
        for p in sorted((run / name).rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (run / name).rmdir()
    (run / "final_model.safetensors").unlink()
    config = json.loads((run / "config.json").read_text())
    old = {k: v for k, v in config.items() if k not in ADDED_FIELDS}
    (run / "config.json").write_text(json.dumps(old, indent=1) + "\n")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert train(cfg, run, runtime)["steps"] == 2
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before
