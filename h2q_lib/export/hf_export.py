"""A project checkpoint as a Hugging Face GPT-2 folder: ``h2q export RUN_OR_CHECKPOINT OUT``.

The project's model is GPT-2's architecture (pre-LayerNorm blocks, biases everywhere,
learned positions, a head tied to the token embedding), so it becomes a
``GPT2LMHeadModel`` that ``transformers`` and ``lm_eval --model hf`` open with no project
code. ``OUT`` holds

- ``config.json``: a ``GPT2Config`` of the run's shape (``n_positions`` = ``block_size``,
  ``n_inner`` = ``n_ff``), ``activation_function="gelu"`` (the exact, erf GELU of
  ``F.gelu``; GPT-2's own default ``gelu_new`` is the tanh approximation) and
  ``layer_norm_epsilon=1e-5`` (``nn.LayerNorm``'s default);
- ``model.safetensors``: the weights, renamed; GPT-2 stores its linear layers as ``Conv1D``
  (``in x out``), so every ``nn.Linear`` weight is transposed;
- ``generation_config.json``: the run's own sampling (temperature, top-k, sample length);
- the tokenizer, encoding exactly as the run's does (``hf_tokenizer``): for ``char`` a
  ``tokenizers`` word-level model over single characters (``tokenizer.json``), for ``gpt2``
  GPT-2's BPE files (``vocab.json``, ``merges.txt``) and their ``tokenizer.json``;
- ``README.md``: a model card (what the model is, its recipe, its scores in bits per byte).

The folder is written beside ``OUT`` under a temporary name, loaded back with
``transformers`` and checked against the project model (``check_export``: same logits,
same token ids), and only then renamed into place. The parts: the model
(``export.gpt2_weights``), the tokenizer (``export.tokenizer``), the card
(``export.model_card``) and the safe writing of the folder (``export.safe_folder``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from h2q_lib.core.errors import ConfigError, H2QError
from h2q_lib.core.run_folder import shown
from h2q_lib.evaluation.checkpoint_scores import check_run_weights
from h2q_lib.export.errors import ExportError
from h2q_lib.export.gpt2_weights import hf_model
from h2q_lib.export.model_card import model_card, stored_scores
from h2q_lib.export.safe_folder import check_out, written_in_place
from h2q_lib.export.tokenizer import EXPORTABLE_TOKENIZERS, hf_tokenizer

FORMATS = ("hf",)
# The export check: logits of the exported model against the project's, in fp32 on the CPU.
CHECK_TEXT = "The meaning of life is = Valkyria Chronicles = \n 1 @,@ 000 km², naïve 漢字 ✓\n"
CHECK_ATOL = 1e-4


def resolve_source(checkpoint: str | os.PathLike) -> Path:
    """The weights file: a run folder means its ``final_model.safetensors``."""
    p = Path(checkpoint)
    if p.is_dir() and (p / "final_model.safetensors").is_file():
        return p / "final_model.safetensors"
    if p.is_file() and p.suffix in (".safetensors", ".pt"):
        return p
    raise ConfigError("RUN_OR_CHECKPOINT", os.fspath(checkpoint),
                      "a run folder with final_model.safetensors, or an existing project "
                      ".safetensors or .pt checkpoint")


def check_export(folder: Path, model, tokenizer, text: str = CHECK_TEXT) -> dict:
    """Load ``folder`` with transformers alone and compare it with the project model.

    The logits may differ by the project model's own fp32 rounding error (ten times its
    distance from a float64 run of itself; at least ``CHECK_ATOL``): two correct fp32
    implementations (different attention kernels) differ by about that much, more in a
    model with large activations. Returns ``{"max_abs_logit_diff", "allowed",
    "ids_equal"}``; raises ``ExportError`` when the ids or the logits differ.
    """
    import copy

    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(folder)
    ours_ids = tokenizer.encode(text).tolist()
    ids_equal = hf_tok(text)["input_ids"] == ours_ids
    if not ids_equal:
        raise ExportError(f"the exported tokenizer encodes {text!r} differently from the run's")
    x = torch.tensor([[tokenizer.bos_id, *ours_ids][: model.config.block_size]])
    with torch.no_grad():
        ours = model.float()(x)
        exact = copy.deepcopy(model).double()(x)
        diff = float((hf(x).logits - ours).abs().max())
    allowed = max(CHECK_ATOL, 10 * float((ours.double() - exact).abs().max()))
    if not diff <= allowed:
        raise ExportError(f"the exported model's logits differ from the project model's by "
                          f"{diff:.3g} (allowed {allowed:.3g})")
    return {"max_abs_logit_diff": diff, "allowed": allowed, "ids_equal": ids_equal}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers without progress bars and warnings (the export says what it did)."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def write_hf_folder(folder: Path, weights: Path, name: str, check: bool = True) -> None:
    """Write the export of ``weights`` into the existing, empty ``folder`` (``name`` is what
    the model card calls it)."""
    from h2q_lib.training.checkpoint import load_model

    model, tokenizer, meta = load_model(weights, "cpu")
    if tokenizer.name not in EXPORTABLE_TOKENIZERS:
        raise ExportError(f"{shown(weights)} uses the {tokenizer.name!r} tokenizer: export "
                          f"supports the {' and '.join(EXPORTABLE_TOKENIZERS)} tokenizers")
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    recipe = meta.get("recipe") or {}
    with _quiet_transformers():
        hf_model(state, meta["model_args"], tokenizer, recipe).save_pretrained(folder)
        hf_tokenizer(tokenizer, meta["model_args"]["block_size"], folder)
        source = f"{weights.parent.name}/{weights.name}" if weights.parent.name else weights.name
        card = model_card(name, meta, tokenizer, model.num_parameters(),
                          stored_scores(weights), source)
        (folder / "README.md").write_text(card, encoding="utf-8")
        if check:
            check_export(folder, model, tokenizer)


def export_hf(checkpoint: str | os.PathLike, out: str | os.PathLike, check: bool = True
              ) -> Path:
    """Write the Hugging Face folder ``out`` for a run folder or checkpoint (see the module
    docstring); returns ``out``. Needs ``transformers`` (the ``gpt2`` extra).

    The folder is written under a temporary name beside ``out`` and renamed into place
    only when complete (and checked), so ``out`` is never half written; an earlier export
    in ``out`` is replaced as a whole (``safe_folder.written_in_place``).
    """
    weights = resolve_source(checkpoint)
    if Path(checkpoint).is_dir():  # a run folder: exported under its name, so its own weights
        check_run_weights(Path(checkpoint), weights, "exported")
    typed = os.fspath(out)
    out = check_out(out)
    if out.name in ("", ".", ".."):  # "." or "..": the folder itself, by its own name
        out = out.resolve()
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ExportError("h2q export needs transformers: pip install -e '.[gpt2]'") from None
    with written_in_place(out, typed) as tmp:
        write_hf_folder(tmp, weights, out.name, check)
    return out


def export_command(checkpoint: str, out: str, format: str = "hf") -> Path:  # noqa: A002
    """``h2q export``: check the arguments (one ``ConfigError`` naming each), export, say
    what was written."""
    if format not in FORMATS:
        raise ConfigError("--format", format, "one of " + ", ".join(FORMATS))
    folder = export_hf(checkpoint, out)
    print(f"h2q export: wrote {shown(out)} (Hugging Face GPT-2: "
          + ", ".join(sorted(p.name for p in folder.iterdir())) + ")")
    print(f"  load it with AutoModelForCausalLM.from_pretrained({str(out)!r}), or score it: "
          f"lm_eval --model hf --model_args pretrained={shown(out)} --tasks wikitext")
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m h2q_lib.export.hf_export RUN_OR_CHECKPOINT OUT [--format hf]``."""
    parser = argparse.ArgumentParser(prog="h2q export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                        help="a run folder (its final_model.safetensors) or a .safetensors/.pt "
                        "checkpoint")
    parser.add_argument("out", metavar="OUT", help="the folder to write")
    parser.add_argument("--format", default="hf", help="hf (a Hugging Face GPT-2 folder)")
    args = parser.parse_args(argv)
    try:
        export_command(args.checkpoint, args.out, format=args.format)
    except H2QError as e:
        print(f"h2q: error: {e}", file=sys.stderr)
        return 2
    return 0


__all__ = ["ExportError", "FORMATS", "check_export", "export_command", "export_hf", "main",
           "resolve_source", "write_hf_folder"]

if __name__ == "__main__":
    sys.exit(main())
