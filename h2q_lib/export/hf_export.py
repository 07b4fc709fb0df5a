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
same token ids), and only then renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from h2q_lib.core.errors import ConfigError, H2QError
from h2q_lib.core.run_folder import is_disk_full, no_space_left, read_json, shown

FORMATS = ("hf",)
EXPORTABLE_TOKENIZERS = ("char", "gpt2")
# Everything an export writes; a folder holding only these may be exported over.
EXPORT_FILES = frozenset({
    "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "README.md",
})
# Written first into every export (and its temporary folder): a folder is replaced by a new
# export only when it carries it, so a user's folder (a save_pretrained one, a README) never is.
EXPORT_MARKER = ".h2q-export"
# The export check: logits of the exported model against the project's, in fp32 on the CPU.
CHECK_TEXT = "The meaning of life is = Valkyria Chronicles = \n 1 @,@ 000 km², naïve 漢字 ✓\n"
CHECK_ATOL = 1e-4


class ExportError(H2QError):
    """A checkpoint that cannot be exported, or an export that does not match its model."""


class ExportInterrupted(H2QError):
    """SIGTERM during an export (exit status 143, as a run's)."""

    exit_code = 143


# --- what to export ----------------------------------------------------------------------------


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


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a Path, unless it cannot hold an export: a file, a symbolic link, a folder
    that is neither empty nor an earlier export (its ``EXPORT_MARKER`` and only the files an
    export writes: anything else is never replaced), or a path in a missing folder."""
    typed = os.fspath(out)
    out = Path(out)
    allowed = "a new or empty folder, or an earlier h2q export, in an existing folder"
    if out.is_symlink():
        raise ConfigError("OUT", typed, allowed + " (it is a symbolic link; give the folder "
                          "it points to)")
    if out.exists():
        if not out.is_dir():
            raise ConfigError("OUT", typed, allowed + " (it is a file)")
        entries = sorted(p.name for p in out.iterdir())
        foreign = [name for name in entries if name not in EXPORT_FILES | {EXPORT_MARKER}]
        if foreign:
            raise ConfigError("OUT", typed, f"{allowed} (it holds {', '.join(foreign[:5])})")
        if entries and EXPORT_MARKER not in entries:
            raise ConfigError("OUT", typed, f"{allowed} (it holds {', '.join(entries[:5])} "
                              f"but no {EXPORT_MARKER} marker: not written by h2q export)")
    if not out.absolute().parent.is_dir():
        raise ConfigError("OUT", typed, allowed)
    return out


def _temporary(out: Path, kind: str) -> re.Pattern:
    """The names ``export_hf`` gives its temporary folders beside ``out`` (mkdtemp's)."""
    return re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.{kind}$")


def _hold(folder: Path) -> int:
    """An exclusive lock on ``folder`` while this export uses it (``remove_stale_exports``
    leaves a held folder alone: another export at work)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale_exports(out: Path) -> list[Path]:
    """Remove what a killed export of ``out`` left beside it: ``.OUT.*.tmp`` folders that
    carry ``EXPORT_MARKER`` (or are empty) and ``.OUT.*.old`` folders holding only such an
    export, none held by a live export. Nothing of another name or content is touched."""
    import fcntl

    removed = []
    parent = out.absolute().parent
    tmp, old = _temporary(out, "tmp"), _temporary(out, "old")
    for entry in parent.iterdir():
        if not (tmp.match(entry.name) or old.match(entry.name)) or entry.is_symlink() \
                or not entry.is_dir():
            continue
        inside = entry / "export" if old.match(entry.name) else entry
        names = {p.name for p in entry.iterdir()}
        if old.match(entry.name) and names not in (set(), {"export"}):
            continue
        if inside.is_dir() and not inside.is_symlink() and any(inside.iterdir()) \
                and not (inside / EXPORT_MARKER).is_file():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # another export is writing it
        try:
            shutil.rmtree(entry)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends an export as Ctrl-C does: its temporary folder is removed on the way."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise ExportInterrupted("interrupted by SIGTERM; the export was not written and its "
                                "temporary folder was removed")

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --- the model ----------------------------------------------------------------------------------


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
        max_new_tokens=int(recipe.get("sample_tokens") or 200),
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model.eval()


# --- the tokenizer ------------------------------------------------------------------------------


def char_backend(tokenizer):
    """A ``tokenizers.Tokenizer`` that encodes as ``CharTokenizer.encode`` does.

    Every character (newlines included: ``[\\s\\S]``) is one piece; a word-level model maps
    it to its id, a character outside the vocabulary to ``<unk>``. No normalizer and no
    post-processor: nothing is added or changed, as in the run's ``encode``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(tokenizer.itos)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # characters join without spaces
    return backend


def hf_tokenizer(tokenizer, context: int, folder: Path):
    """A transformers fast tokenizer that gives the run tokenizer's ids, saved in ``folder``.

    ``split_special_tokens=True``: the text ``<unk>`` (or ``<|endoftext|>``) in a page is
    encoded as the characters (bytes) it is made of, as the run's tokenizer does; only the
    ids themselves are the specials.
    """
    from transformers import PreTrainedTokenizerFast

    if tokenizer.name == "char":
        hf = PreTrainedTokenizerFast(
            tokenizer_object=char_backend(tokenizer), bos_token="<bos>", eos_token="<eos>",
            unk_token="<unk>", pad_token="<pad>", split_special_tokens=True,
            clean_up_tokenization_spaces=False, model_max_length=context)
    elif tokenizer.name == "gpt2":
        from h2q_lib.model.gpt2 import hf_gpt2_tokenizer

        hf = hf_gpt2_tokenizer(folder)  # also copies vocab.json and merges.txt into folder
        hf.model_max_length = context
    else:
        raise ExportError(f"a {tokenizer.name!r} tokenizer has no Hugging Face form here: "
                          f"export supports the {' and '.join(EXPORTABLE_TOKENIZERS)} tokenizers")
    hf.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # transformers 5 writes its own class names; the older ones load in transformers 4 and 5
    config["tokenizer_class"] = ("GPT2TokenizerFast" if tokenizer.name == "gpt2"
                                 else "PreTrainedTokenizerFast")
    config["split_special_tokens"] = True  # save_pretrained keeps only __init__ arguments
    for key in ("is_local", "local_files_only"):  # where this copy was read from
        config.pop(key, None)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return hf


# --- the model card -----------------------------------------------------------------------------


def stored_scores(weights: Path) -> dict:
    """``{protocol: {split: result}}`` from the ``evaluation.json`` beside ``weights``, only
    the entries scored on exactly these weights (same sha256 as ``h2q evaluate`` keys), in
    fp32 (the precision lm-eval's numbers are reproduced in: the card says they agree), and
    sound as ``h2q evaluate`` checks a stored entry (``scores.result_problem``: an edited
    number, a string or a missing metric is left out, never printed or a traceback)."""
    from h2q_lib.evaluation.checkpoint_scores import checkpoint_identity, result_problem

    stored = read_json(weights.parent / "evaluation.json") or {}
    sha = checkpoint_identity(weights)["weights_sha256"]
    found: dict = {}
    for protocol, entries in stored.items():
        for split, entry in (entries.items() if isinstance(entries, dict) else ()):
            key = entry.get("key", {}) if isinstance(entry, dict) else {}
            if not isinstance(key, dict) or key.get("precision") != "fp32" \
                    or result_problem(entry.get("result")) is not None:
                continue
            if key.get("weights_sha256") == sha:
                found.setdefault(protocol, {})[split] = {
                    **entry["result"], "max_documents": key.get("max_documents")}
    return found


def model_card(name: str, meta: dict, tokenizer, n_params: int, scores: dict,
               source: str) -> str:
    """``README.md`` of an export: what the model is, its recipe and its scores."""
    args, recipe = meta["model_args"], meta.get("recipe") or {}
    per = ("character" if tokenizer.name == "char" else "GPT-2 BPE token")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [gpt2, h2q-repro" + (", character-level]" if tokenizer.name == "char" else "]"),
        "datasets: [Salesforce/wikitext]",
        "language: [en]",
        "---",
        "",
        f"# {name}",
        "",
        f"A GPT-2-architecture language model of {n_params:,} parameters "
        f"({args['n_layer']} layers, {args['n_head']} heads, width {args['n_embd']}, "
        f"feed-forward {args['n_ff']}, context {args['block_size']} tokens, "
        f"{args['vocab_size']:,} token ids), trained on WikiText by "
        "h2q-repro (a reproduction and audit of the H2Q-AGI "
        "\"Real AGI Training Completion Report\") and exported with `h2q export` from "
        f"`{source}`" + (f" after {meta['step']:,} training steps." if "step" in meta else "."),
        "",
    ]
    if tokenizer.name == "char":
        lines += [
            "**Its tokens are characters.** The tokenizer is the report's reconstructed "
            f"\"simple tokenizer\": `<pad>`, `<unk>`, `<bos>`, `<eos>` and the "
            f"{len(tokenizer.chars)} most frequent characters of the training text; any "
            "other character is `<unk>`. So its *perplexity is per character*: "
            "a token perplexity of this model cannot be set beside GPT-2's per-word or "
            "per-BPE-token perplexities. Compare models in **bits per byte** (below).",
            "",
        ]
    else:
        lines += ["Its tokenizer is GPT-2's byte-level BPE (50,257 ids); its token "
                  "perplexity is per GPT-2 BPE token.", ""]
    lines += ["## Recipe", ""] + (["| field | value |", "|---|---|"] if recipe else
                                  ["Not recorded in the checkpoint."])
    keys = ("tokenizer", "data_config", "train_data_config", "steps", "schedule_steps",
            "reading", "warmup", "batch_size", "grad_accum", "lr", "min_lr", "weight_decay",
            "grad_clip", "dropout", "seed")
    lines += [f"| `{k}` | {recipe[k]} |" for k in keys if recipe.get(k) is not None]
    if {"batch_size", "grad_accum"} <= set(recipe):
        per_step = recipe["batch_size"] * recipe["grad_accum"] * args["block_size"]
        lines += [f"| tokens per step | {per_step:,} |"]
    if meta.get("precision"):
        lines += [f"| training precision | {meta['precision']} on {meta.get('device', '?')} |"]
    lines += ["", "## Scores", ""]
    rows = []

    def cell(m: dict, name: str, spec: str) -> str:
        value = m.get(name)  # null: a perplexity that overflowed (a diverged run)
        if value is None:
            return "∞" if name.endswith("perplexity") else "—"
        return format(value, spec)

    for protocol, splits in scores.items():
        for split, r in splits.items():
            m = r["metrics"]
            pages = f"first {r['documents']}" if r.get("max_documents") else f"all {r['documents']}"
            rows.append(f"| {protocol} | {split} | {pages} | "
                        f"{cell(m, 'bits_per_byte', '.4f')} | "
                        f"{cell(m, 'byte_perplexity', '.4f')} | "
                        f"{cell(m, 'word_perplexity', '.6g')} | "
                        f"{cell(m, 'token_perplexity', '.4f')} |")
    if rows:
        lines += [
            "Scored by `h2q evaluate` in fp32 (the precision in which `lm_eval --model hf` "
            "gives the same numbers) on raw WikiText-103 (`lm-eval`: lm-evaluation-harness's "
            "`wikitext` task, its pages, detokenizer and counts; `report`: the report's "
            "preprocessed text). Bits per byte is the comparable unit; the last column is "
            f"perplexity per {per}.",
            "",
            f"| protocol | split | pages | bits per byte | byte perplexity | word perplexity "
            f"| perplexity per {per} |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    else:
        lines += ["Not scored in fp32 yet: `h2q evaluate` the run (fp32 is its default), "
                  "then export it again."]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        f"print(pipeline(\"text-generation\", model=\"{name}\")(\"The meaning of life is\"))",
        "```",
        "",
        "```bash",
        f"lm_eval --model hf --model_args pretrained={name} --tasks wikitext",
        "```",
        "",
        "Notes: the config is GPT-2's with `activation_function: gelu` (exact GELU) and "
        "`layer_norm_epsilon: 1e-5`, as trained. The tokenizer adds no `<bos>` itself; "
        "lm-evaluation-harness starts every rolling window with the BOS token "
        f"(`{'<bos>' if tokenizer.name == 'char' else '<|endoftext|>'}`), as `h2q evaluate` "
        "does, so both give the same scores. Generation samples with the run's own "
        f"temperature {recipe.get('temperature', 0.8)} and top-k {recipe.get('top_k', 40)}.",
        "",
    ]
    return "\n".join(lines)


# --- the export and its check -------------------------------------------------------------------


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
    in ``out`` is replaced as a whole.
    """
    weights = resolve_source(checkpoint)
    typed = os.fspath(out)
    out = check_out(out)
    if out.name in ("", ".", ".."):  # "." or "..": the folder itself, by its own name
        out = out.resolve()
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ExportError("h2q export needs transformers: pip install -e '.[gpt2]'") from None
    parent = out.absolute().parent
    with _sigterm_as_interrupt():
        remove_stale_exports(out)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
        except OSError as e:
            if is_disk_full(e):
                raise no_space_left(out) from None
            raise ConfigError("OUT", typed, f"a folder path that can be written "
                              f"({e.strerror or e})") from None
        held = _hold(tmp)
        try:
            (tmp / EXPORT_MARKER).write_text("h2q-export-1\n", encoding="utf-8")
            write_hf_folder(tmp, weights, out.name, check)
            # mkdtemp's 0700 (and some writers' 0600) become the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            for path in tmp.iterdir():
                os.chmod(path, 0o666 & ~umask)
            _put_in_place(tmp, out, parent)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(e):
                raise no_space_left(out) from None
            if isinstance(e, OSError):
                raise ConfigError("OUT", typed, f"a folder that can be written "
                                  f"({e.strerror or e})") from None
            raise
        finally:
            os.close(held)
    return out


def _put_in_place(tmp: Path, out: Path, parent: Path) -> None:
    """Rename the written ``tmp`` to ``out``. An existing ``out`` (empty, or an earlier export)
    is swapped as a whole where it can be renamed; a folder that cannot be (a mount point,
    the working folder) gets the files moved into it, the marker first."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not any(out.iterdir()) or out.is_mount() \
            or out.resolve() == Path.cwd().resolve():
        for name in sorted(p.name for p in out.iterdir()):  # an earlier export's files
            (out / name).unlink()
        names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n != EXPORT_MARKER)
        for name in names:
            os.replace(tmp / name, out / name)
        tmp.rmdir()
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
    os.replace(out, old / "export")
    os.replace(tmp, out)
    shutil.rmtree(old)


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


__all__ = ["EXPORT_FILES", "EXPORT_MARKER", "ExportError", "ExportInterrupted", "FORMATS",
           "check_export", "export_command", "export_hf", "hf_config", "hf_state_dict",
           "hf_tokenizer", "model_card", "main", "remove_stale_exports", "write_hf_folder"]

if __name__ == "__main__":
    sys.exit(main())
