"""Document-level evaluation on WikiText: one summed NLL, every metric from it.

The scoring is lm-evaluation-harness's rolling log-likelihood (and, with context 1024 and
de-tokenized pages, the GPT-2 paper's protocol):

1. each document becomes ``seq = [prefix_id] + encode(page)``; ``seq[0]`` is only context,
   ``seq[1:]`` is scored, so a document of ``n`` ids scores ``n - 1`` tokens;
2. the scored tokens are cut into windows (``rolling_windows``); every one is scored once;
3. ``nll_sum = -sum ln p(seq[t] | window context)`` in nats, summed in float64;
4. the counts that turn it into word/byte/character metrics are ALWAYS taken on the
   original page, whatever text the model was fed (``metrics.summarize``).

``wikitext_detokenizer`` is lm-evaluation-harness's, byte for byte. Which pages are scored,
and how a checkpoint's scores are stored, is ``scores.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from h2q_lib.core.errors import ConfigError
from h2q_lib.data import wikitext as data
from h2q_lib.evaluation import metrics
from h2q_lib.model.gpt2 import GPT2_CONTEXT
from h2q_lib.training.hardware import (
    DEVICES,
    PrecisionChoice,
    autocast,
    choose_precision,
    pick_device,
)

# fp16 is accepted where the hardware rule allows it (a GPU), for callers that pass the
# training precision; on the CPU ``choose_precision`` refuses it.
PRECISIONS = ("auto", "bf16", "fp32", "fp16")
SCORING_DEFAULT_REASON = ("scoring default: fp32 reproduces lm-evaluation-harness's numbers "
                          "(ask for bf16 by name to score faster)")
Window = tuple[int, int, int]  # (input_start, input_end, first_scored_offset)
Job = tuple[int, int, int, int]  # (document, input_start, input_end, first_scored_offset)


# --- windows --------------------------------------------------------------------------------


def rolling_windows(n_tokens: int, context: int, stride: int | None = None) -> list[Window]:
    """Windows over ``seq[0:n_tokens]`` that score every position ``1 .. n_tokens - 1`` once.

    A window ``(s, e, k)`` feeds ``seq[s:e]`` (at most ``context`` ids); output position ``j``
    predicts ``seq[s + j + 1]`` and positions ``j >= k`` are scored, i.e. the targets
    ``seq[s + k + 1 : e + 1]``.

    The scored positions are cut into consecutive chunks of ``stride`` tokens
    (``stride=None`` means ``stride = context``: non-overlapping windows, lm-eval's rolling
    log-likelihood). The chunk ``[a, b)`` is predicted from the ``context`` ids that end
    just before its last target: ``s = max(0, b - 1 - context)``, ``e = b - 1``,
    ``k = a - 1 - s``. So the first window starts at the BOS prefix, later windows see a
    full context, and with a smaller stride each window scores only its newest tokens.
    """
    if context < 1:
        raise ConfigError("context", context, "a positive integer")
    stride = context if stride is None else stride
    if not 1 <= stride <= context:
        raise ConfigError("stride", stride, f"None or an integer in [1, context={context}]")
    windows = []
    for a in range(1, n_tokens, stride):
        b = min(a + stride, n_tokens)
        s = max(0, b - 1 - context)
        windows.append((s, b - 1, a - 1 - s))
    return windows


# --- WikiText de-tokenization (lm-eval's) ---------------------------------------------------


def _bracket_pair(opening: str, closing: str) -> re.Pattern[str]:
    """``opening``, spaces, the shortest run without ``closing``, spaces, ``closing``."""
    o, c = re.escape(opening), re.escape(closing)
    return re.compile(rf"{o}\s*([^{c}]*?)\s*{c}")


# lm-evaluation-harness's steps, in its order: a str is replaced literally (str.replace), a
# pattern with re.sub. Order matters: " , " must meet the page before the pairing rules do.
_DETOKENIZE_STEPS: tuple[tuple[str | re.Pattern[str], str], ...] = (
    ("s '", "s'"),  # the players ' union -> the players' union
    # As lm-eval has it: the slashes are literal, so only the text "/' 5/" changes (to
    # "/'[0-9]/"); WikiText has none. Kept so that the output is byte-identical.
    (re.compile(r"/' [0-9]/"), "/'[0-9]/"),
    (" @-@ ", "-"),  # well @-@ known -> well-known
    (" @,@ ", ","),  # 1 @,@ 000 -> 1,000
    (" @.@ ", "."),  # 2 @.@ 5 -> 2.5
    *((f" {mark} ", f"{mark} ") for mark in ":;.!?,"),  # word , word -> word, word
    # ( x ) -> (x), " x " -> "x", ' x ' -> 'x': each opening mark pairs with the next
    # closing one, across lines too; single quotes pair even as apostrophes (Chang 'an ...)
    *((_bracket_pair(o, c), rf"{o}\1{c}") for o, c in ("()", "[]", "{}", '""', "''")),
    ("= = = =", "===="),  # heading markers
    ("= = =", "==="),
    ("= =", "=="),
    (" \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"),  # 5 ° C -> 5°C
    (" \n", "\n"),  # one space at each line edge
    ("\n ", "\n"),
    (" N ", " 1 "),  # Penn Treebank's number token
    (" 's", "'s"),  # Teddy 's -> Teddy's
)


def wikitext_detokenizer(text: str) -> str:
    """lm-evaluation-harness's ``wikitext_detokenizer``, byte for byte.

    Applied in order to the whole page (``_DETOKENIZE_STEPS``):
    ``"s '"`` -> ``"s'"``; ``" @-@ "`` -> ``"-"``, ``" @,@ "`` -> ``","``, ``" @.@ "`` ->
    ``"."``; ``" X "`` -> ``"X "`` for ``X`` in ``: ; . ! ? ,``; inside each pair of
    ``()``, ``[]``, ``{}``, ``""`` and ``''`` the spaces next to the marks are removed
    (``re.sub(r"\\(\\s*([^\\)]*?)\\s*\\)", r"(\\1)")`` and alike; a pair may span lines, and
    an apostrophe pairs like a quote: ``"Chang 'an"`` becomes ``"Chang'an"``);
    ``"= = = ="``, ``"= = ="``, ``"= ="`` -> ``"===="``, ``"==="``, ``"=="``;
    ``" ° "`` -> ``"°"``; ``" \\n"`` and ``"\\n "`` -> ``"\\n"``; ``" N "`` -> ``" 1 "``;
    ``" 's"`` -> ``"'s"``.
    """
    for pattern, replacement in _DETOKENIZE_STEPS:
        if isinstance(pattern, str):
            text = text.replace(pattern, replacement)
        else:
            text = pattern.sub(replacement, text)
    return text


# --- results --------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Summed NLL (nats), the counts of the ORIGINAL pages, and every metric derived from them.

    ``tokens`` is the number of scored tokens (the BOS prefix of each document excluded).
    """

    nll_sum: float
    tokens: int
    characters: int
    utf8_bytes: int
    whitespace_words: int
    wikitext_words: int
    documents: int
    metrics: dict[str, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _PageCounts:
    characters: int = 0
    utf8_bytes: int = 0
    whitespace_words: int = 0
    wikitext_words: int = 0

    def add(self, page: str) -> None:
        """Counts of one original page: lm-eval's ``re.split(r"\\s+")`` and WikiText's words."""
        lines = page[:-1].split("\n") if page.endswith("\n") else page.split("\n")
        self.characters += len(page)
        self.utf8_bytes += len(page.encode("utf-8"))
        self.whitespace_words += data.whitespace_words(page)
        self.wikitext_words += data.wikitext_words(lines)


# --- scoring --------------------------------------------------------------------------------


def prefix_id(tokenizer) -> int:
    """The context-only first id: ``bos_id``, else ``eos_id``, else 0.

    GPT-2 has no BOS and uses ``<|endoftext|>`` (its ``eos_id``), as lm-eval does.
    """
    for attr in ("bos_id", "eos_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def encode_with_prefix(tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """``[prefix_id] + encode(text)`` as int64 arrays; uses ``encode_batch`` where it exists."""
    texts = list(texts)
    if hasattr(tokenizer, "encode_batch"):
        encoded = tokenizer.encode_batch(texts)
    else:
        encoded = [tokenizer.encode(t) for t in texts]
    head = np.asarray([prefix_id(tokenizer)], dtype=np.int64)
    return [np.concatenate([head, np.asarray(ids, dtype=np.int64)]) for ids in encoded]


def _logits(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, T, V)`` from our GPT (a tensor) or a Hugging Face model (``.logits``)."""
    config = getattr(model, "config", None)
    out = model(x, use_cache=False) if hasattr(config, "use_cache") else model(x)
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, tuple):
        return out[0]
    return out


def _batch_scores(
    model: Callable,
    seqs: Sequence[np.ndarray],
    jobs: Sequence[Job],
    device: torch.device,
    greedy: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """NLL sum of each job of one batch (and whether each is greedy), right-padded.

    Attention is causal, so the padding after a window never changes its own logits; the
    padded positions are simply not scored.
    """
    width = max(e - s for _, s, e, _ in jobs)
    x = np.zeros((len(jobs), width), dtype=np.int64)
    y = np.zeros((len(jobs), width), dtype=np.int64)
    for row, (d, s, e, _) in enumerate(jobs):
        x[row, : e - s] = seqs[d][s:e]
        y[row, : e - s] = seqs[d][s + 1 : e + 1]
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).to(device)
    logits = _logits(model, xt)
    # row by row: one (T, V) float copy at a time; the per-token NLLs then go to the CPU in
    # one transfer (one device sync a batch) and are summed in float64 there, which MPS lacks
    nll = [F.cross_entropy(logits[row, k : e - s].float(), yt[row, k : e - s], reduction="none")
           for row, (_, s, e, k) in enumerate(jobs)]
    starts = np.cumsum([0] + [e - s - k for _, s, e, k in jobs[:-1]])
    sums = np.add.reduceat(torch.cat(nll).cpu().double().numpy(), starts)
    if not greedy:
        return sums, None
    hits = torch.stack([(logits[row, k : e - s].argmax(-1) == yt[row, k : e - s]).all()
                        for row, (_, s, e, k) in enumerate(jobs)])
    return sums, hits.cpu().numpy()


def score_jobs(
    model: Callable,
    seqs: Sequence[np.ndarray],
    jobs: Sequence[Job],
    batch_size: int,
    device: str | torch.device,
    precision: str,
    greedy: bool = False,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """NLL of each job ``(d, s, e, k)`` in nats (float64), and whether it is greedy.

    nll = -sum_{t = s+k+1}^{e} ln p(seq[t] | seq[s:t]),  seq = seqs[d];
    greedy: every such ``seq[t]`` is the model's argmax (only computed when ``greedy``).
    Jobs are sorted by length and run ``batch_size`` at a time under ``precision``
    (``bf16``/``fp16`` autocast, or ``fp32``), the model in eval mode.
    """
    device = torch.device(device)
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][2] - jobs[i][1], reverse=True)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="eval", unit="batch")
    nll = np.zeros(len(jobs), dtype=np.float64)
    hits = np.zeros(len(jobs), dtype=bool)
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        # One autocast region for all batches: its cache casts each weight only once.
        with torch.inference_mode(), autocast(device.type, precision):
            for batch in batches:
                sums, batch_hits = _batch_scores(model, seqs, [jobs[i] for i in batch], device,
                                                 greedy)
                nll[batch] = sums
                if batch_hits is not None:
                    hits[batch] = batch_hits
    finally:
        if was_training:
            model.train()
    return nll, hits


def as_device(device: str | torch.device) -> torch.device:
    """``auto`` (``hardware.pick_device``), a device name such as ``cpu`` or ``cuda:1``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device(pick_device("auto"))
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError("device", device, "one of " + ", ".join(DEVICES)) from None


def resolve_precision(device: str | torch.device, precision: str = "auto") -> PrecisionChoice:
    """The precision evaluation runs in on ``device``, and why.

    ``auto`` (the default) is fp32 on every device: the protocol's numbers (lm-evaluation-
    harness's ``hf`` model scores in fp32) are reproduced only there, bf16 differs by about
    1e-4 in word perplexity, and the choice must never depend on a timing probe of a busy
    machine (training's rule, ``hardware.choose_precision``). ``bf16``/``fp16`` are used only
    when asked for by name.
    """
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, "one of " + ", ".join(PRECISIONS))
    if precision == "auto":
        as_device(device)  # a bad device still fails here
        return PrecisionChoice("fp32", SCORING_DEFAULT_REASON)
    return choose_precision(as_device(device).type, precision)


def check_positive(name: str, value: object, optional: bool = False) -> None:
    """``ConfigError`` naming ``name`` unless ``value`` is a positive int (or None if optional)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, value, ("None or " if optional else "") + "a positive integer")


def evaluate_documents(
    model: Callable,
    tokenizer,
    docs: Sequence[str],
    context: int,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    stride: int | None = None,
    detokenize: bool = False,
    precision: str = "auto",
    max_documents: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Score ``docs`` with ``model`` and return the summed NLL, the counts and the metrics.

    ``model`` maps a LongTensor ``(B, T)`` on ``device`` to logits ``(B, T, V)`` (our
    ``GPT``), or is a Hugging Face causal LM (its ``.logits`` are used). The model sees
    ``[prefix_id(tokenizer)] + encode(page)`` with ``page`` de-tokenized when
    ``detokenize``; the counts are those of the original page. Windows of all documents
    are sorted by length and batched ``batch_size`` at a time. ``precision="auto"``
    follows the hardware rule (``resolve_precision``); the choice and its reason go into
    ``settings``.
    """
    check_positive("context", context)
    check_positive("batch_size", batch_size)
    check_positive("max_documents", max_documents, optional=True)
    device = as_device(device)
    choice = resolve_precision(device, precision)
    pages = list(docs[:max_documents] if max_documents is not None else docs)
    if not pages:  # said as what it is, not as the "n_tokens=0" it would become
        raise ConfigError("docs", "[]", "at least one page to score (the input was empty)")
    if not any(pages):  # an empty page scores 0 (lm-eval's too); only empty ones give nothing
        raise ConfigError("docs", f"{len(pages)} empty page(s)",
                          "at least one page with text (every page given was empty)")
    counts = _PageCounts()
    for page in pages:
        counts.add(page)
    fed = [wikitext_detokenizer(p) for p in pages] if detokenize else pages
    seqs = encode_with_prefix(tokenizer, fed)
    jobs = [
        (d, *w) for d, seq in enumerate(seqs) for w in rolling_windows(len(seq), context, stride)
    ]
    nll, _ = score_jobs(model, seqs, jobs, batch_size, device, choice.precision,
                        progress=progress)
    nll_sum = float(nll.sum())
    n_tokens = sum(len(s) - 1 for s in seqs)
    return EvalResult(
        nll_sum=nll_sum,
        tokens=n_tokens,
        documents=len(pages),
        metrics=metrics.summarize(
            nll_sum,
            n_tokens,
            counts.characters,
            counts.utf8_bytes,
            counts.whitespace_words,
            counts.wikitext_words,
        ),
        settings={
            "tokenizer": getattr(tokenizer, "name", type(tokenizer).__name__),
            "context": context,
            "stride": stride,
            "detokenize": detokenize,
            "precision": choice.precision,
            "precision_reason": choice.reason,
            "prefix_id": prefix_id(tokenizer),
        },
        **asdict(counts),
    )


def evaluate_split(model: Callable, tokenizer, split: data.Split, **kw) -> EvalResult:
    """``evaluate_documents`` on the split's pages (``data.documents``, lm-eval's split)."""
    result = evaluate_documents(model, tokenizer, data.documents(split.lines), **kw)
    result.settings.update(split=split.name, config=split.config, source=split.origin)
    return result


def gpt2_protocol(
    model: Callable, tokenizer, split: data.Split, context: int = GPT2_CONTEXT, **kw
) -> EvalResult:
    """GPT-2's WikiText protocol: de-tokenized pages, context 1024, non-overlapping windows.

    ``metrics["wikitext_word_perplexity"]`` = exp(nll_sum / WikiText words), the GPT-2
    paper's rescaling; ``metrics["word_perplexity"]`` = exp(nll_sum / whitespace words),
    lm-evaluation-harness's ``word_perplexity``.
    """
    return evaluate_split(model, tokenizer, split, context=context, detokenize=True, **kw)


__all__ = [
    "EvalResult",
    "as_device",
    "encode_with_prefix",
    "evaluate_documents",
    "evaluate_split",
    "gpt2_protocol",
    "prefix_id",
    "resolve_precision",
    "rolling_windows",
    "score_jobs",
    "wikitext_detokenizer",
]
