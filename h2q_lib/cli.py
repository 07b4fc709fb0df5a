"""The ``h2q`` command: ``train``, ``pipeline``, ``bench``, ``evaluate`` and ``export``.

Every ``TrainConfig`` (recipe) and ``RuntimeConfig`` field is a flag of ``h2q train``
(``--steps 100``, ``--batch-size 4``, ``--device cpu``); bad values end with one line naming
the parameter, the value and what is allowed (exit code 2).
"""

from __future__ import annotations

import argparse
import errno
import sys
from dataclasses import fields

from h2q_lib.core.errors import ConfigError, H2QError
from h2q_lib.training.profiles import (
    PROFILES,
    RuntimeConfig,
    TrainConfig,
    get_profile,
    split_overrides,
)

# a benchmark's micro-batch and accumulation (the report's: 8 and 4); more sequences than
# this a micro-batch would not fit any machine's memory at the report's model size
MAX_BENCH_SEQUENCES = 1024
# errors in which the system refuses a file, not a fault of h2q's: shown in one line
REFUSED_BY_THE_SYSTEM = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                   errno.EDQUOT})
_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "str | None": str,
          "int | None": int}


def parse_value(name: str, text: str, type_name: str):
    """Convert a flag's text to its field's type, or raise ``ConfigError`` naming it."""
    try:
        if type_name == "bool":
            low = text.lower()
            if low not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return low in ("1", "true", "yes")
        if type_name.endswith("| None") and text.lower() in ("", "none"):
            return None
        return _TYPES[type_name](text)
    except ValueError:
        raise ConfigError(name, text, f"a value of type {type_name}") from None


def _config_fields():
    return list(fields(TrainConfig)) + list(fields(RuntimeConfig))


def overrides_from_args(args: argparse.Namespace) -> dict:
    out = {}
    for f in _config_fields():
        text = getattr(args, f.name, None)
        if text is not None:
            out[f.name] = parse_value(f.name, text, str(f.type))
    return out


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    recipe = {f.name for f in fields(TrainConfig)}
    for f in _config_fields():
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                       metavar=str(f.type).upper().replace(" | NONE", ""),
                       help=f"override {f.name} (default from the profile)" if f.name in recipe
                       else f"runtime: {f.name} (default {getattr(RuntimeConfig(), f.name)!r})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="h2q", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or resume a run")
    t.add_argument("--profile", default="prefix", help="one of " + ", ".join(PROFILES))
    t.add_argument("--run-dir", default=None, help="run folder (default runs/<profile>)")
    t.add_argument("--extend", action="store_true",
                   help="let a run continue to a larger --steps (its recipe otherwise equal)")
    t.add_argument("--restart", action="store_true",
                   help="start the run over: first remove what h2q wrote in --run-dir")
    _add_config_flags(t)

    r = sub.add_parser("predict", help="pre-register a run: the schedule clock's predicted "
                       "validation loss at its evaluation steps, written before it starts")
    r.add_argument("--profile", default="prefix", help="one of " + ", ".join(PROFILES))
    r.add_argument("--name", required=True, help="the run's folder name under --runs-dir")
    r.add_argument("--runs-dir", default="runs", help="the committed runs the clock is fitted on")
    r.add_argument("--out", default=None, help="JSON file (default <runs-dir>/<name>/"
                   "prediction.json)")
    _add_config_flags(r)

    p = sub.add_parser("pipeline", help="run notebooks 01-05 with papermill, then build the book")
    p.add_argument("--profile", default="smoke", help="one of " + ", ".join(PROFILES))
    p.add_argument("--data-dir", default=None, help="local WikiText folder (or $H2Q_DATA_DIR)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go")
    p.add_argument("--out-dir", default="book/notebooks",
                   help="where the executed notebooks go (the book reads book/notebooks)")
    p.add_argument("--no-book", action="store_true", help="skip `jupyter-book build`")
    p.add_argument("--restart", action="store_true",
                   help="start runs over (removes the profile's run folders, if h2q made them)")
    p.add_argument("--precision", default="auto",
                   help="auto (the hardware rule), bf16, fp16 or fp32 for training and scoring")

    b = sub.add_parser("bench", help="throughput benchmark (prints a table, writes JSON)")
    b.add_argument("--out", default="benchmarks/results.json")
    b.add_argument("--quick", action="store_true", help="fewer repetitions")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    b.add_argument("--batch-size", type=int, default=8, help="sequences per micro-batch")
    b.add_argument("--grad-accum", type=int, default=4, help="micro-batches per step")

    e = sub.add_parser("evaluate", help="score a checkpoint on WikiText (table + JSON)")
    e.add_argument("checkpoint", help="a .safetensors/.pt file, a run folder (its "
                   "final_model.safetensors) or a GPT-2 folder")
    e.add_argument("--protocol", default="lm-eval",
                   help="lm-eval (lm-evaluation-harness's wikitext pages, de-tokenized) or "
                   "report (the report's preprocessing)")
    e.add_argument("--splits", nargs="+", default=["validation", "test"],
                   help="validation, test (default both)")
    e.add_argument("--max-documents", default=None, help="score only the first N pages")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    e.add_argument("--precision", default="fp32",
                   help="fp32 (the default, and what auto means here: lm-eval's numbers) or "
                   "bf16 (faster where it is native; differs by about 1e-4)")
    e.add_argument("--batch-size", default="8", help="windows per forward pass")
    e.add_argument("--data-dir", default=None, help="local WikiText folder (or $H2Q_DATA_DIR)")
    e.add_argument("--out", default=None, help="JSON file (default <run_dir>/evaluation.json "
                   "for a run's model, else evaluation.json)")
    x = sub.add_parser("export", help="write a model as a Hugging Face GPT-2 folder")
    x.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                   help="a run folder (its final_model.safetensors) or a .safetensors/.pt "
                   "checkpoint")
    x.add_argument("out", metavar="OUT",
                   help="the folder to write (new, empty, or an earlier export)")
    x.add_argument("--format", default="hf",
                   help="hf: config.json, model.safetensors, tokenizer and model card that "
                   "transformers and lm_eval --model hf load")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from h2q_lib.core.run_cleanup import restart_run_folder
            from h2q_lib.training.checks import check_run
            from h2q_lib.training.trainer import train

            recipe, runtime = split_overrides(overrides_from_args(args))
            cfg = get_profile(args.profile, **recipe)
            runtime = RuntimeConfig(**runtime).validate()
            run_dir = args.run_dir or f"runs/{args.profile}"
            if args.restart:  # only once every value is known to be good
                check_run(cfg, runtime)
                restart_run_folder(run_dir)
            summary = train(cfg, run_dir, runtime, extend=args.extend)
            if summary:
                print({k: summary[k] for k in ("steps", "best_val_loss", "mean_tokens_per_s",
                                               "precision")})
        elif args.command == "predict":
            import os

            from h2q_lib.analysis.preregistration import PREDICTION, predict_command

            values = overrides_from_args(args)
            recipe, _ = split_overrides(values)
            cfg = get_profile(args.profile, **recipe)
            command = " ".join([f"h2q train --profile {args.profile}"] + [
                f"--{k.replace('_', '-')} {v}" for k, v in recipe.items()])
            out = args.out or os.path.join(args.runs_dir, args.name, PREDICTION)
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            pred = predict_command(cfg, args.name, args.runs_dir, out, command)
            shown = [f"{p['step']}: {p['predicted']:.3f}" for p in pred["points"]
                     if p["predicted"] is not None]
            print(f"p = {pred['clock']['p']:g}, band ±{pred['clock']['band_nats']:.3f} nats; "
                  + ", ".join(shown) + f" -> {out}")
        elif args.command == "pipeline":
            from h2q_lib.book.pipeline import run_pipeline

            run_pipeline(args.profile, data_dir=args.data_dir, runs_dir=args.runs_dir,
                         out_dir=args.out_dir, build_book=not args.no_book,
                         restart=args.restart, precision=args.precision)
        elif args.command == "bench":
            from h2q_lib.bench.benchmark import run_benchmark

            for name in ("batch_size", "grad_accum"):
                if not 1 <= getattr(args, name) <= MAX_BENCH_SEQUENCES:
                    raise ConfigError(name, getattr(args, name),
                                      f"an integer from 1 to {MAX_BENCH_SEQUENCES:,} (the "
                                      "report's recipe: batch_size 8, grad_accum 4)")
            run_benchmark(out=args.out, quick=args.quick, device=args.device,
                          batch_size=args.batch_size, grad_accum=args.grad_accum)
        elif args.command == "evaluate":
            from h2q_lib.evaluation.evaluate_command import evaluate_command

            evaluate_command(args.checkpoint, protocol=args.protocol, splits=args.splits,
                             max_documents=args.max_documents, device=args.device,
                             precision=args.precision, batch_size=args.batch_size,
                             data_dir=args.data_dir, out=args.out)
        elif args.command == "export":
            from h2q_lib.export.hf_export import export_command

            export_command(args.checkpoint, args.out, format=args.format)
    except H2QError as e:
        print(f"h2q: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:  # Ctrl-C outside training (training stops on its own)
        print("h2q: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # the commands check their folders first; a file the system still refuses later
        # (permissions, a read-only or full disk) is named in one line, not a traceback
        if e.errno not in REFUSED_BY_THE_SYSTEM:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"h2q: error: {where}{e.strerror or e} (refused by the system: check the "
              "folder's permissions and free space)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
