"""Time ``evaluate_split`` on whole WikiText-103 splits with the report's 25.5M char model.

Without ``--checkpoint`` the model has random weights (the speed does not depend on them):
the report's architecture with the 127-symbol character vocabulary and context 512. With
``--checkpoint`` (a run's ``final_model.safetensors`` or ``checkpoints/best.pt``) the metrics
are real. Not a test: run it by hand,

    python benchmarks/eval_speed.py [--checkpoint PATH] [--splits test] [--device auto]
                                    [--batch-size 8] [--precision auto] [--out FILE.json]

The data folder is ``--data-dir``, else ``$H2Q_DATA_DIR``, else ``../shared/data/wikitext``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from h2q_lib.bench.benchmark import device_name
from h2q_lib.bench.evaluation_speed import random_char_model, timed_evaluation
from h2q_lib.data import wikitext as data
from h2q_lib.model.gpt import count_parameters
from h2q_lib.training.checkpoint import load_model
from h2q_lib.training.hardware import choose_precision, pick_device

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    default_dir = os.environ.get(data.DATA_DIR_ENV) or str(REPO.parent / "shared/data/wikitext")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("--config", default="wikitext-103-v1", choices=data.CONFIGS)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--splits", default="test", help="comma-separated: validation,test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--max-documents", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    device = pick_device(args.device)
    precision = choose_precision(device, args.precision).precision
    splits = {name: data.load_split(name, args.config, data_dir=args.data_dir)
              for name in args.splits.split(",")}
    if args.checkpoint:
        model, tokenizer, _ = load_model(args.checkpoint, device)
    else:
        model, tokenizer = random_char_model(splits[next(iter(splits))], device)
    cfg = model.config
    print(f"model: {count_parameters(cfg):,} parameters, context {cfg.block_size}, "
          f"{device_name(device)}, precision {precision}")

    results = {"device": device, "device_name": device_name(device),
               "checkpoint": args.checkpoint, "torch": torch.__version__, "splits": {}}
    for name, split in splits.items():
        result, seconds = timed_evaluation(model, tokenizer, split, device, precision,
                                           args.batch_size, args.max_documents)
        results["splits"][name] = {"seconds": seconds, "tokens_per_s": result.tokens / seconds,
                                   **result.to_dict()}
        print(f"{name}: documents {result.documents}, scored tokens {result.tokens:,}, "
              f"{seconds:.1f} s, {result.tokens / seconds:,.0f} tokens/s, "
              f"bits/byte {result.metrics['bits_per_byte']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
