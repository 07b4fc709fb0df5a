"""The ``h2q evaluate`` command: its flags checked one by one, the checkpoint or run folder
it names, the scores it stores and the table it prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import check_writable
from h2q_lib.evaluation.checkpoint_identity import HUB_ID
from h2q_lib.evaluation.checkpoint_scores import (
    check_run_weights,
    check_scores_file,
    evaluate_run,
    evaluate_to_file,
)
from h2q_lib.evaluation.documents import resolve_precision
from h2q_lib.evaluation.protocols import PROTOCOLS, check_splits
from h2q_lib.evaluation.stored_results import is_finite_number
from h2q_lib.training.hardware import DEVICES, pick_device


def _flag_int(flag: str, value: object) -> int | None:
    """A positive integer flag given as text (or None); one ``ConfigError`` naming the flag."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(flag, value, "a positive integer") from None
    if number < 1:
        raise ConfigError(flag, value, "a positive integer")
    return number


def _resolve_checkpoint(checkpoint: str) -> tuple[Path, Path | None]:
    """``(weights, run_dir)``: a run folder means its final_model.safetensors; a GPT-2
    folder or hub name stands as it is."""
    p = Path(checkpoint)
    if p.is_dir() and ((p / "final_model.safetensors").is_file() or (p / ".h2q-run").is_file()):
        return p / "final_model.safetensors", p
    if (p.is_dir() and (p / "config.json").is_file()) or (
            p.is_file() and p.suffix in (".safetensors", ".pt")):
        is_run = p.name == "final_model.safetensors" and (p.parent / ".h2q-run").is_file()
        return p, (p.parent if is_run else None)
    if not p.exists() and not p.suffix and HUB_ID.fullmatch(checkpoint):
        return p, None  # a GPT-2 name on the hub
    raise ConfigError("checkpoint", checkpoint,
                      "an existing .safetensors or .pt file, a run folder with "
                      "final_model.safetensors, a GPT-2 folder or a GPT-2 hub name")


def _renamed(flag: str, error: ConfigError) -> ConfigError:
    return ConfigError(flag, error.value, error.allowed)


def format_table(stored: dict, protocols: Sequence[str], splits: Sequence[str]) -> str:
    """A small fixed-width table of the stored results of ``protocols`` x ``splits``."""
    head = (f"{'protocol':<9}{'split':<11}{'pages':>6}{'tokens':>12}{'bits/byte':>11}"
            f"{'byte ppl':>11}{'word ppl':>12}{'token ppl':>12}")
    lines = [head, "-" * len(head)]
    for protocol in protocols:
        for split in splits:
            entry = stored.get(protocol, {}).get(split)
            if not entry:
                continue
            r = entry["result"]
            m = r["metrics"]

            def cell(value, width: int, spec: str) -> str:
                return f"{value:>{width}{spec}}" if is_finite_number(value) else f"{'-':>{width}}"

            lines.append(f"{protocol:<9}{split:<11}{cell(r.get('documents'), 6, '')}"
                         f"{cell(r.get('tokens'), 12, ',')}"
                         f"{cell(m.get('bits_per_byte'), 11, '.4f')}"
                         f"{cell(m.get('byte_perplexity'), 11, '.4g')}"
                         f"{cell(m.get('word_perplexity'), 12, '.5g')}"
                         f"{cell(m.get('token_perplexity'), 12, '.5g')}")
    return "\n".join(lines)


def evaluate_command(
    checkpoint: str,
    protocol: str = "lm-eval",
    splits: Sequence[str] = ("validation", "test"),
    max_documents: str | int | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: str | int = 8,
    data_dir: str | None = None,
    out: str | None = None,
) -> dict:
    """``h2q evaluate``: check every flag (one ``ConfigError`` naming it), check that
    ``--out``'s folder can be written, score, print a table and write the JSON."""
    if protocol not in PROTOCOLS:
        raise ConfigError("--protocol", protocol, "one of " + ", ".join(PROTOCOLS))
    try:
        splits = check_splits(splits, "--splits")
    except ConfigError as e:
        raise _renamed("--splits", e) from None
    max_docs = _flag_int("--max-documents", max_documents)
    batch = _flag_int("--batch-size", batch_size)
    if device not in DEVICES:
        raise ConfigError("--device", device, "one of " + ", ".join(DEVICES))
    try:
        device = pick_device(device)
    except ConfigError as e:
        raise _renamed("--device", e) from None
    try:
        choice = resolve_precision(device, precision)
    except ConfigError as e:
        raise _renamed("--precision", e) from None
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ConfigError("--data-dir", data_dir,
                          "an existing folder laid out like <folder>/wikitext-2-raw-v1/"
                          "wiki.test.raw")
    weights, run_dir = _resolve_checkpoint(checkpoint)
    out_path = Path(out) if out else (run_dir / "evaluation.json" if run_dir
                                      else Path("evaluation.json"))
    check_writable(out_path, "--out")
    check_scores_file(out_path, weights, "--out")
    print(f"h2q evaluate: {weights} (protocol {protocol}; {choice.precision} on {device}: "
          f"{choice.reason})")
    if run_dir is not None and out is None:
        stored = evaluate_run(run_dir, (protocol,), splits, max_docs, data_dir, device,
                              precision, batch, announce=print, progress=True)
    else:
        if run_dir is not None:
            check_run_weights(run_dir, weights)
        stored = evaluate_to_file(weights, out_path, (protocol,), splits, max_docs, data_dir,
                                  device, precision, batch, announce=print, progress=True)
    if run_dir is not None and out is None and not weights.is_file():
        # a committed folder is only read: say which precision its numbers are from, not the
        # one asked for above (nothing was scored in it)
        shown = sorted({str(stored.get(protocol, {}).get(split, {}).get("key", {})
                            .get("precision")) for split in splits})
        print(f"shown: the stored results, scored in {', '.join(shown)} (the run folder keeps "
              f"no weights, so nothing was scored in {choice.precision})")
    print(format_table(stored, (protocol,), splits))
    if run_dir is None or out is not None or weights.is_file():
        print(f"wrote {out_path}")  # a committed folder without weights is only read
    return stored
