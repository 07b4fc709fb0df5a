"""The ``h2q`` command: ``h2q train``, ``h2q pipeline``, ``h2q bench``.

Every ``TrainConfig`` field is a flag (``--steps 100``, ``--batch-size 4``); bad values end
with one line naming the parameter, the value and what is allowed (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from .errors import ConfigError, H2QError
from .profiles import PROFILES, TrainConfig, get_profile

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


def overrides_from_args(args: argparse.Namespace) -> dict:
    out = {}
    for f in fields(TrainConfig):
        text = getattr(args, f.name, None)
        if text is not None:
            out[f.name] = parse_value(f.name, text, str(f.type))
    return out


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for f in fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                       metavar=str(f.type).upper().replace(" | NONE", ""),
                       help=f"override {f.name} (default from the profile)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="h2q", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train or resume a run")
    t.add_argument("--profile", default="cpu", help="one of " + ", ".join(PROFILES))
    t.add_argument("--run-dir", default=None, help="run folder (default runs/<profile>)")
    _add_config_flags(t)

    p = sub.add_parser("pipeline", help="run notebooks 01-04 with papermill, then build the book")
    p.add_argument("--profile", default="smoke", help="one of " + ", ".join(PROFILES))
    p.add_argument("--data-dir", default=None, help="local WikiText folder (or $H2Q_DATA_DIR)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go")
    p.add_argument("--out-dir", default="book/notebooks",
                   help="where the executed notebooks go (the book reads book/notebooks)")
    p.add_argument("--no-book", action="store_true", help="skip `jupyter-book build`")
    p.add_argument("--restart", action="store_true",
                   help="start runs over (deletes the profile's run folders and caches)")

    b = sub.add_parser("bench", help="throughput benchmark (prints a table, writes JSON)")
    b.add_argument("--out", default="benchmarks/results.json")
    b.add_argument("--quick", action="store_true", help="fewer repetitions")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    b.add_argument("--batch-size", type=int, default=8, help="sequences per micro-batch")
    b.add_argument("--grad-accum", type=int, default=4, help="micro-batches per step")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from .train import train

            cfg = get_profile(args.profile, **overrides_from_args(args))
            summary = train(cfg, args.run_dir or f"runs/{args.profile}")
            if summary:
                print({k: summary[k] for k in ("steps", "best_val_loss", "mean_tokens_per_s")})
        elif args.command == "pipeline":
            from .pipeline import run_pipeline

            run_pipeline(args.profile, data_dir=args.data_dir, runs_dir=args.runs_dir,
                         out_dir=args.out_dir, build_book=not args.no_book,
                         restart=args.restart)
        elif args.command == "bench":
            from .bench import run_benchmark

            for name in ("batch_size", "grad_accum"):
                if getattr(args, name) < 1:
                    raise ConfigError(name, getattr(args, name), "a positive integer")
            run_benchmark(out=args.out, quick=args.quick, device=args.device,
                          batch_size=args.batch_size, grad_accum=args.grad_accum)
    except H2QError as e:
        print(f"h2q: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
