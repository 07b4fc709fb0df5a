"""The project model's weights as a Hugging Face ``GPT2LMHeadModel``: its ``GPT2Config``,
its tensors under GPT-2's names, and the model with the run's sampling."""

from __future__ import annotations

import torch

from h2q_lib.export.errors import ExportError


def hf_config(model_args: dict, tokenizer):
    """The ``GPT2Config`` of a project model: its shape, exact GELU, LayerNorm eps 1e-5."""
    from transformers import GPT2Config

    dropout = float(model_args.get("dropout", 0.0))
    return GPT2Config(
        vocab_size=model_args["vocab_size"],
        n_positions=model_args["block_size"],
        n_embd=model_args["n_embd"],
        n_layer=model_args["n_layer"],
        n_head=model_args["n_head"],
        n_inner=model_args["n_ff"],
        activation_function="gelu",  # F.gelu: exact (erf); GPT-2's "gelu_new" is tanh
        layer_norm_epsilon=1e-5,  # nn.LayerNorm's default
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        pad_token_id=getattr(tokenizer, "pad_id", tokenizer.eos_id),
        tie_word_embeddings=True,
    )


def hf_state_dict(state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """The project's tensors under GPT-2's names; linear weights transposed to ``Conv1D``."""
    out = {"transformer.wte.weight": state["tok_emb.weight"],
           "transformer.wpe.weight": state["pos_emb.weight"],
           "transformer.ln_f.weight": state["ln_f.weight"],
           "transformer.ln_f.bias": state["ln_f.bias"]}
    names = {"ln1": "ln_1", "ln2": "ln_2", "attn.qkv": "attn.c_attn",
             "attn.proj": "attn.c_proj", "ff.up": "mlp.c_fc", "ff.down": "mlp.c_proj"}
    for i in range(n_layer):
        for ours, theirs in names.items():
            weight = state[f"blocks.{i}.{ours}.weight"]
            if not ours.startswith("ln"):
                weight = weight.t()  # nn.Linear is (out, in); Conv1D is (in, out)
            out[f"transformer.h.{i}.{theirs}.weight"] = weight.contiguous()
            out[f"transformer.h.{i}.{theirs}.bias"] = state[f"blocks.{i}.{ours}.bias"]
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in out.items()}


def new_tokens(recipe: dict, context: int) -> int:
    """How many tokens a generation call adds by default: the run's sample length (200 if
    it recorded none), at most half the context, so that GPT-2's learned positions never
    run out (prompt + new tokens <= context once the card's ``handle_long_generation=
    "hole"`` keeps the prompt's last ``context - new`` tokens)."""
    return max(1, min(int(recipe.get("sample_tokens") or 200), context // 2))


def hf_model(state: dict[str, torch.Tensor], model_args: dict, tokenizer, recipe: dict):
    """A ``GPT2LMHeadModel`` holding the project's weights, with the run's sampling."""
    from transformers import GenerationConfig, GPT2LMHeadModel

    config = hf_config(model_args, tokenizer)
    model = GPT2LMHeadModel(config)
    missing, unexpected = model.load_state_dict(
        hf_state_dict(state, model_args["n_layer"]), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:  # the head is tied to wte
        raise ExportError(f"the weights do not fit GPT-2's layout: missing {missing}, "
                          f"unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=float(recipe.get("temperature", 0.8)),
        top_k=int(recipe.get("top_k", 40)),
        max_new_tokens=new_tokens(recipe, model_args["block_size"]),
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model.eval()
