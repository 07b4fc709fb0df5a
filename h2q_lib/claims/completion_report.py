"""The audited report's numbers, transcribed as data (nothing here is measured).

``ReportClaims()`` holds the report exactly as written; tests and the book build altered
copies with ``dataclasses.replace(REPORT, parameters=...)`` to show that each check can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from h2q_lib.model.gpt import GPTConfig

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class ProgressRow:
    """One row of the report's "Training progress" table (perplexity "-" is None)."""

    step: int
    loss: float
    perplexity: float | None
    tokens_per_s: int
    progress_pct: float


@dataclass(frozen=True)
class BaselineRow:
    """One row of the report's "Comparison with baselines" table, labels as printed."""

    model: str
    params_label: str
    wikitext103_ppl: float


PROGRESS: tuple[ProgressRow, ...] = (
    ProgressRow(100, 2.7180, None, 4_469, 2.0),
    ProgressRow(500, 1.5178, 4.56, 4_647, 10.0),
    ProgressRow(1000, 1.4108, 4.10, 4_810, 20.0),
    ProgressRow(1500, 1.3103, 3.71, 4_894, 29.9),
    ProgressRow(2000, 1.2458, 3.47, 4_954, 39.8),
    ProgressRow(2500, 1.2148, 3.37, 4_998, 49.7),
    ProgressRow(3000, 1.1786, 3.25, 5_091, 54.5),
    ProgressRow(3500, 1.1659, 3.21, 5_160, 61.7),
    ProgressRow(4000, 1.1436, 3.14, 5_173, 70.4),
    ProgressRow(4500, 1.1230, 3.07, 5_182, 79.0),
    ProgressRow(5000, 1.1085, 3.03, 5_276, 86.3),
    ProgressRow(5500, 1.0968, 2.99, 5_492, 91.1),
    ProgressRow(6000, 1.0828, 2.95, 5_685, 96.1),
    ProgressRow(6350, 1.0925, None, 5_806, 99.6),
)

BASELINES: tuple[BaselineRow, ...] = (
    BaselineRow("GPT-2 Small", "117M", 37.5),
    BaselineRow("GPT-2 Medium", "345M", 26.4),
    BaselineRow("GPT-2 Large", "774M", 22.0),
)


@dataclass(frozen=True)
class SampleRow:
    """One generated sample of the report's "Generated samples" section, verbatim."""

    step: int
    prompt: str
    output: str
    comment: str


SAMPLES: tuple[SampleRow, ...] = (
    SampleRow(1000, "The meaning of life is",
              "The meaning of life is be a that and . They the same with the air of the @-@ ...",
              "grammar chaotic, meaning unclear"),
    SampleRow(3000, "The meaning of life is",
              "The meaning of life is , called in the Merry and Morricle , will the 2004 – 2008 "
              "tournament...", "structure starts to appear"),
    SampleRow(6000, "The meaning of life is",
              "The meaning of life is a father of his heading , as he is known as I ski...",
              "more coherent, meaningful phrases appear"),
    SampleRow(6000, "Artificial intelligence will",
              "Artificial intelligence will be accepted as chief energy and social there for ...",
              "more coherent, meaningful phrases appear"),
)


@dataclass(frozen=True)
class ReportClaims:
    """Every number the report states; defaults are the report's values."""

    # configuration
    dataset: str = "WikiText-103"
    device: str = "Apple MPS (Metal GPU)"
    parameters: int = 25_547_264
    n_embd: int = 512
    n_layer: int = 8
    n_head: int = 8
    n_ff: int = 2048
    vocab_size: int = 50_000
    seq_len: int = 512
    batch_size: int = 8
    effective_batch: int = 32
    grad_accum: int = 4
    learning_rate: float = 6e-4
    warmup_steps: int = 2_000
    steps: int = 6_350
    # progress and results
    progress: tuple[ProgressRow, ...] = PROGRESS
    final_loss: float = 1.0925
    best_val_loss: float = 1.0828
    best_val_step: int = 6_000
    best_perplexity: float = 2.95
    tokens_processed: int = 104_038_400
    avg_tokens_per_s: int = 5_500
    start_time: str = "2026-01-22 06:03:14"
    end_time: str = "2026-01-22 11:05:27"
    duration_stated_s: int = 5 * 3600 + 2 * 60  # "5 h 2 min"
    loss_reduction_pct: float = -60.3  # "2.72 -> 1.08"
    ppl_reduction_pct: float = -35.3  # "4.56 -> 2.95"
    # files
    checkpoint_mb: float = 300.0
    final_model_mb: float = 105.0
    # data
    train_tokens: int = 527_706_706
    validation_tokens: int = 1_120_496
    samples: int = 1_030_091
    epochs: float = 1.0  # "only 1 epoch so far"
    # generated samples and the comparison
    generated_samples: tuple[SampleRow, ...] = SAMPLES
    baselines: tuple[BaselineRow, ...] = BASELINES
    wikitext103_ppl: float = 2.95

    def model_config(self, vocab_size: int | None = None) -> GPTConfig:
        """The listed architecture as a ``GPTConfig`` (vocabulary as stated unless given)."""
        return GPTConfig(
            vocab_size=self.vocab_size if vocab_size is None else vocab_size,
            block_size=self.seq_len,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            n_ff=self.n_ff,
        )

    def duration_s(self) -> int:
        """Wall-clock seconds between the header's start and end times."""
        start = datetime.strptime(self.start_time, TIME_FORMAT)
        end = datetime.strptime(self.end_time, TIME_FORMAT)
        return int((end - start).total_seconds())

    def tokens_per_step(self) -> int:
        """batch × accumulation × sequence length."""
        return self.batch_size * self.grad_accum * self.seq_len


REPORT = ReportClaims()
