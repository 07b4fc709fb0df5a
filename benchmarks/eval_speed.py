"""Time ``evaluate_split`` on the full WikiText-103 test split with the report's 25.5M char model.

Random weights (the speed does not depend on them), ``GPTConfig()`` with the 127-symbol
character vocabulary, context 512, bf16 autocast on CPU. Not a test: run it by hand,

    python benchmarks/eval_speed.py [--data-dir DIR] [--batch-size 8] [--precision bf16]

``--data-dir`` defaults to ``$H2Q_DATA_DIR``, else ``../shared/data/wikitext`` next to the repo.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from h2q_lib import data
from h2q_lib.evaluate import evaluate_split
from h2q_lib.model import GPT, GPTConfig, count_parameters
from h2q_lib.tokenizers import CharTokenizer

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    default_dir = os.environ.get(data.DATA_DIR_ENV) or str(REPO.parent / "shared/data/wikitext")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=default_dir)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--max-documents", type=int, default=None)
    args = parser.parse_args()

    split = data.load_split("test", data_dir=args.data_dir)
    tokenizer = CharTokenizer.train([split.text()])
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    print(
        f"model: {count_parameters(cfg):,} parameters, context {cfg.block_size}, "
        f"{torch.get_num_threads()} threads, precision {args.precision}"
    )

    start = time.perf_counter()
    result = evaluate_split(
        model,
        tokenizer,
        split,
        context=cfg.block_size,
        batch_size=args.batch_size,
        precision=args.precision,
        max_documents=args.max_documents,
    )
    seconds = time.perf_counter() - start
    print(f"documents {result.documents}, scored tokens {result.tokens:,}")
    print(f"seconds {seconds:.1f}, tokens/s {result.tokens / seconds:,.0f}")
    print(f"bits/char (random weights) {result.metrics['bits_per_character']:.3f}")


if __name__ == "__main__":
    main()
