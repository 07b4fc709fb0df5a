"""What a run is: its recipe (``TrainConfig``), how it runs (``RuntimeConfig``), named profiles.

The recipe's defaults are the audited report's recipe, read from ``report.REPORT`` (the one
place its architecture and schedule are written); a profile changes some of them:

- ``smoke``: a tiny model on the local 1,000-line WikiText-2 train slice; about a minute on
  2 CPU cores (regression tests, nbval; the pipeline's fast check).
- ``prefix``: the report's recipe unchanged (the 6,350-step schedule, warmup 2,000, lr 6e-4,
  8 x 4 x 512 tokens a step, the char tokenizer, the report's preprocessing and validation
  text) stopped after 500 steps, trained on the complete WikiText-2 training text, which
  500 steps see less than once. The book's reproduction.
- ``short400``: the report's schedule compressed to a finished 400 steps (warm-up 126 =
  2,000 x 400 / 6,350, cosine to ``min_lr`` at step 400), otherwise ``prefix``: a curve whose
  rate decays, for fitting a schedule-aware loss law.
- ``report``: the report's recipe to the end (an MPS or CUDA machine with the full data).

``config.json`` in a run folder holds the recipe only; ``RuntimeConfig`` (data folder,
device, precision, threads, ...) may differ between a run and its resume.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields

from h2q_lib.claims.completion_report import REPORT
from h2q_lib.core.errors import ConfigError
from h2q_lib.data.tokenizers import TOKENIZER_NAMES
from h2q_lib.data.wikitext import CONFIGS, SOURCES
from h2q_lib.model.attention import KERNELS
from h2q_lib.model.gpt import GPTConfig
from h2q_lib.training.hardware import DEVICES, PRECISIONS
from h2q_lib.training.readings import READINGS

# The report's text: WikiText-103 raw through Hugging Face datasets; its validation split
# gives the report's 1,120,496 character tokens (notebook 01).
REPORT_DATA_CONFIG = "wikitext-103-raw-v1"


# how a run's weights start (``initialization.initialize``) and which parameters weight
# decay applies to (``optimizer.build_optimizer``)
INITS = ("gpt2", "pytorch")
DECAY_SCOPES = ("matrices", "all")
# recipe fields added after runs were committed, with the value every earlier run had: at
# that value a field is left out of the recipe's hash (``recipe_identity.recipe_sha256``)
ADDED_FIELDS = {"init": "gpt2", "adam_beta2": 0.95, "decay_scope": "matrices"}


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass
class TrainConfig:
    """The recipe: everything that decides a run's weights and records."""

    # data
    tokenizer: str = "char"
    data_config: str = REPORT_DATA_CONFIG  # validation text (and training, unless below)
    train_data_config: str | None = None  # None: data_config's training split
    # model
    n_layer: int = REPORT.n_layer
    n_head: int = REPORT.n_head
    n_embd: int = REPORT.n_embd
    n_ff: int = REPORT.n_ff
    block_size: int = REPORT.seq_len
    dropout: float = 0.0
    # optimisation
    batch_size: int = REPORT.batch_size
    grad_accum: int = REPORT.grad_accum
    steps: int = REPORT.steps  # the steps this run trains
    schedule_steps: int | None = None  # the cosine schedule's length (None: steps)
    warmup: int = REPORT.warmup_steps
    reading: str = "stated"  # what the scheduler counts (readings.READINGS)
    lr: float = REPORT.learning_rate
    min_lr: float = REPORT.learning_rate / 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # the gradient norm's bound; 0: no clipping
    seed: int = 1337
    # settings the report leaves unsaid, as data for the pre-registered run N4 (issue #33);
    # at their defaults (ADDED_FIELDS) a recipe's hash is the one it had before they existed
    init: str = "gpt2"  # gpt2: N(0, 0.02), scaled residual projections; pytorch: each module's
    adam_beta2: float = 0.95  # AdamW's second-moment decay (GPT-2's; torch's default 0.999)
    decay_scope: str = "matrices"  # weight decay on matrices (>= 2-D) or on all parameters
    # what the run records: validation, log lines, checkpoints, samples
    eval_every: int = 500
    eval_batches: int = 20
    log_every: int = 10
    ckpt_every: int = 1000
    sample_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 40

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         n_ff=self.n_ff, dropout=self.dropout)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.block_size

    @property
    def schedule_length(self) -> int:
        return self.steps if self.schedule_steps is None else self.schedule_steps

    @property
    def train_data(self) -> str:
        return self.train_data_config or self.data_config

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = "config") -> TrainConfig:
        """A recipe from ``config.json``; unknown keys are named in one ``ConfigError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(where, unknown, "TrainConfig fields: " + ", ".join(sorted(known)))
        return cls(**values).validate()

    def validate(self) -> TrainConfig:
        """Raise ``ConfigError`` naming the first field whose value is not allowed."""
        choices = {"tokenizer": TOKENIZER_NAMES, "data_config": CONFIGS,
                   "reading": tuple(READINGS), "init": INITS, "decay_scope": DECAY_SCOPES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, getattr(self, name), "one of " + ", ".join(allowed))
        if self.train_data_config is not None and self.train_data_config not in CONFIGS:
            raise ConfigError("train_data_config", self.train_data_config,
                              "None or one of " + ", ".join(CONFIGS))
        positive = ("n_layer", "n_head", "n_embd", "n_ff", "block_size", "batch_size",
                    "grad_accum", "steps", "eval_every", "eval_batches", "log_every",
                    "ckpt_every", "top_k")
        for name in positive:
            if not _positive_int(getattr(self, name)):
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.schedule_steps is not None and not _positive_int(self.schedule_steps):
            raise ConfigError("schedule_steps", self.schedule_steps, "None or a positive integer")
        if isinstance(self.adam_beta2, bool) or not isinstance(self.adam_beta2, (int, float)) \
                or not 0 < self.adam_beta2 < 1:
            raise ConfigError("adam_beta2", self.adam_beta2, "a number in (0, 1)")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ConfigError(name, value, "a finite number > 0")
        for name in ("min_lr", "weight_decay", "dropout", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a finite number >= 0")
        for name in ("seed", "sample_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, value, "an integer >= 0")
        if self.min_lr > self.lr:
            raise ConfigError("min_lr", self.min_lr, f"at most lr={self.lr}")
        if not isinstance(self.warmup, int) or not 0 <= self.warmup <= self.schedule_length:
            raise ConfigError("warmup", self.warmup,
                              f"an integer in [0, schedule length={self.schedule_length}]")
        self.model_config(vocab_size=1)  # width/heads/dropout checks
        return self


@dataclass
class RuntimeConfig:
    """How and where a run executes; none of it is part of the recipe."""

    data_dir: str | None = None  # local WikiText folder (None: $H2Q_DATA_DIR, else the hub)
    source: str = "auto"
    device: str = "auto"
    precision: str = "auto"  # the rule in hardware.choose_precision
    attention: str = "auto"  # the rule in attention_rule.choose_attention, or a kernel's name
    compile: bool = False
    threads: int = 0  # 0: torch's default
    # sequences a forward/backward pass (0: the recipe's batch_size); a step still averages
    # the recipe's batch_size x grad_accum sequences, only how they are cut changes
    micro_batch: int = 0
    quiet: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> RuntimeConfig:
        for name, allowed in (("source", SOURCES), ("device", DEVICES),
                              ("precision", PRECISIONS), ("attention", ("auto", *KERNELS))):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, getattr(self, name), "one of " + ", ".join(allowed))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) \
                or self.threads < 0:
            raise ConfigError("threads", self.threads, "an integer >= 0 (0: torch's default)")
        if isinstance(self.micro_batch, bool) or not isinstance(self.micro_batch, int) \
                or self.micro_batch < 0:
            raise ConfigError("micro_batch", self.micro_batch,
                              "an integer >= 0 (0: the recipe's batch_size)")
        return self


RECIPE_FIELDS = tuple(f.name for f in fields(TrainConfig))
RUNTIME_FIELDS = tuple(f.name for f in fields(RuntimeConfig))


@dataclass(frozen=True)
class ExperimentConfig:
    """The equal-bytes tokenizer experiment (notebook 05): one body for every tokenizer.

    Each sequence holds ``bytes_per_sequence`` bytes of text, so every model trains on the
    same bytes in the same number of steps (block_size = bytes x tokens per byte).
    """

    n_layer: int
    n_head: int
    n_embd: int
    n_ff: int
    bytes_per_sequence: int
    batch_size: int
    grad_accum: int
    steps: int
    lr: float
    eval_documents: int | None  # test articles scored (None: all)
    data_config: str  # the WikiText configuration trained on and scored

    def __post_init__(self):
        if self.data_config not in CONFIGS:
            raise ConfigError("data_config", self.data_config, "one of " + ", ".join(CONFIGS))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "data_config" or (f.name == "eval_documents" and value is None):
                continue
            if f.name == "lr":
                if not (isinstance(value, float) and math.isfinite(value) and value > 0):
                    raise ConfigError(f.name, value, "a finite number > 0")
            elif not _positive_int(value):
                raise ConfigError(f.name, value, "a positive integer")

    def body(self) -> dict:
        return {"n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd,
                "n_ff": self.n_ff}


@dataclass(frozen=True)
class Profile:
    """A named recipe, the articles its evaluation scores, and its tokenizer experiment."""

    recipe: dict
    eval_documents: int | None  # articles notebook 03 scores per split (None: all)
    experiment: ExperimentConfig
    about: str
    # runs the readings chapter sets beside this profile's own (its "stated" run):
    # {name in the book: run folder name in the runs folder}
    reading_runs: dict = dataclasses.field(default_factory=dict)
    # short control runs of the stated recipe with one thing changed (seed, training text,
    # precision), set beside its run at the same steps: {name in the book: run folder name}
    control_runs: dict = dataclasses.field(default_factory=dict)
    # runs whose predicted validation losses were committed before they started
    # (``h2q predict``): {name in the book: run folder name}; a folder may hold only its
    # prediction.json until the run is committed
    preregistered_runs: dict = dataclasses.field(default_factory=dict)


# The tokenizer experiment at a size a 2-core CPU finishes (the CPU profiles share it).
CPU_EXPERIMENT = ExperimentConfig(n_layer=4, n_head=4, n_embd=256, n_ff=1024,
                                  bytes_per_sequence=512, batch_size=8, grad_accum=2,
                                  steps=300, lr=1e-3, eval_documents=None,
                                  data_config="wikitext-103-v1")

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        recipe=dict(
            data_config="wikitext-2-raw-v1",
            n_layer=2, n_head=4, n_embd=128, n_ff=512, block_size=128,
            batch_size=8, grad_accum=2, steps=120, warmup=12, lr=2e-3, min_lr=2e-4,
            eval_every=20, eval_batches=4, log_every=5, ckpt_every=60, sample_tokens=80,
        ),
        eval_documents=6,
        experiment=ExperimentConfig(n_layer=2, n_head=4, n_embd=64, n_ff=256,
                                    bytes_per_sequence=256, batch_size=8, grad_accum=1,
                                    steps=40, lr=2e-3, eval_documents=4,
                                    data_config="wikitext-2-raw-v1"),
        about="a tiny model on a small slice: the pipeline's fast check",
    ),
    "prefix": Profile(
        recipe=dict(
            train_data_config="wikitext-2-v1", steps=500, schedule_steps=REPORT.steps,
            eval_every=50, log_every=10, ckpt_every=100,
        ),
        eval_documents=None,
        experiment=CPU_EXPERIMENT,
        about="the report's recipe, first 500 of its 6,350 steps",
        reading_runs={"stated-1000": "prefix-1000", "micro-batch": "prefix-micro-batch",
                      "short400": "short400"},
        control_runs={"seed 1338": "control-seed", "WikiText-103 slice": "control-wt103"},
        preregistered_runs={"N1 no warm-up": "no-warmup", "N2 seed 1339": "seed-1339",
                            "N3 no warm-up, 2× rate": "no-warmup-lr2x",
                            "N4 PyTorch's defaults": "pytorch-defaults"},
    ),
    "short400": Profile(
        recipe=dict(
            train_data_config="wikitext-2-v1", steps=400, schedule_steps=400,
            warmup=round(REPORT.warmup_steps * 400 / REPORT.steps),
            eval_every=50, log_every=10, ckpt_every=100,
        ),
        eval_documents=None,
        experiment=CPU_EXPERIMENT,
        about="the report's schedule compressed to 400 finished steps",
    ),
    "report": Profile(
        recipe=dict(),
        eval_documents=None,
        experiment=ExperimentConfig(n_layer=REPORT.n_layer, n_head=REPORT.n_head,
                                    n_embd=REPORT.n_embd, n_ff=REPORT.n_ff,
                                    bytes_per_sequence=4 * REPORT.seq_len,
                                    batch_size=REPORT.batch_size, grad_accum=REPORT.grad_accum,
                                    steps=REPORT.steps, lr=REPORT.learning_rate,
                                    eval_documents=None, data_config=REPORT_DATA_CONFIG),
        about="the report's recipe to the end",
    ),
}


def get_profile_spec(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError("profile", name, "one of " + ", ".join(PROFILES))
    return PROFILES[name]


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    """``(recipe fields, runtime fields)`` of ``overrides``; any other key is an error."""
    unknown = sorted(set(overrides) - set(RECIPE_FIELDS) - set(RUNTIME_FIELDS))
    if unknown:
        raise ConfigError("overrides", unknown if len(unknown) > 1 else unknown[0],
                          "TrainConfig or RuntimeConfig fields: "
                          + ", ".join(RECIPE_FIELDS + RUNTIME_FIELDS))
    recipe = {k: v for k, v in overrides.items() if k in RECIPE_FIELDS}
    runtime = {k: v for k, v in overrides.items() if k in RUNTIME_FIELDS}
    return recipe, runtime


def get_profile(name: str, **overrides) -> TrainConfig:
    """The recipe of profile ``name`` with recipe ``overrides`` applied, validated."""
    spec = get_profile_spec(name)
    recipe, runtime = split_overrides(overrides)
    if runtime:
        raise ConfigError("override", sorted(runtime)[0],
                          "a recipe field (runtime fields go to RuntimeConfig)")
    return dataclasses.replace(TrainConfig(**spec.recipe), **recipe).validate()


# What notebooks 01/02 take as parameters of their own; ``overrides`` may not repeat them.
NOTEBOOK_RUNTIME = ("data_dir", "device", "precision", "quiet")


def parse_overrides(overrides: object) -> dict:
    """``overrides`` as a mapping: itself, or a JSON (or YAML) string of one.

    ``papermill -p overrides '{"steps": 100}'`` hands the notebook a string; a mapping from
    the Python API or ``-y`` works too. Anything else is one ``ConfigError``.
    """
    if overrides is None:
        return {}
    if isinstance(overrides, str):
        import yaml  # a superset of JSON; papermill depends on it

        try:
            overrides = yaml.safe_load(overrides) if overrides.strip() else {}
        except yaml.YAMLError:
            raise ConfigError("overrides", overrides,
                              'a mapping, or a JSON/YAML string of one: \'{"steps": 100}\'') \
                from None
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise ConfigError("overrides", overrides, 'a mapping of field names to values, e.g. '
                          '{"steps": 100}')
    return dict(overrides)


def notebook_configs(profile: str, overrides: object = None, **runtime) -> tuple[
        TrainConfig, RuntimeConfig]:
    """The recipe and runtime of a notebook's run: the profile, its ``overrides`` (recipe or
    runtime fields), and the notebook's own parameters ``runtime`` (``NOTEBOOK_RUNTIME``)."""
    values = parse_overrides(overrides)
    for key in values:
        if key in NOTEBOOK_RUNTIME:
            raise ConfigError("overrides", key, f"recipe or runtime fields other than {key}, "
                              f"which is a notebook parameter of its own (papermill -p {key} ...)")
    recipe, extra = split_overrides(values)
    return get_profile(profile, **recipe), RuntimeConfig(**{**extra, **runtime}).validate()
