"""Document-level evaluation on WikiText: one summed NLL, every metric from it.

The protocol is lm-evaluation-harness's ``wikitext`` task (and, with ``detokenize=True`` and
context 1024, the GPT-2 paper's):

1. each document (one article) becomes ``seq = [bos] + encode(page)``; ``seq[0]`` is only
   context, ``seq[1:]`` is scored, so a document of ``n`` ids scores ``n - 1`` tokens;
2. the scored tokens are cut into windows (``rolling_windows``); every one is scored once;
3. ``nll_sum = -sum ln p(seq[t] | window context)`` in nats, summed in float64;
4. the counts that turn it into word/byte/character metrics are ALWAYS taken on the
   original page, whatever text the model was fed (``metrics.summarize``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, metrics
from .errors import ConfigError, H2QError

PRECISIONS = ("bf16", "fp32")
Window = tuple[int, int, int]  # (input_start, input_end, first_scored_offset)


class WeightsUnavailableError(H2QError):
    """Pretrained weights could not be loaded (not on disk, hub unreachable, no transformers)."""


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


# --- WikiText de-tokenization ---------------------------------------------------------------

# Applied in order. Each rule undoes one artefact of WikiText's tokenizer; a lookahead keeps
# the rules idempotent on runs like " , , " (a second pass changes nothing).
_DETOKENIZE_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r" @([-,.])@ "), r"\1"),  # 1 @,@ 000 -> 1,000 ; well @-@ known -> well-known
    (re.compile(r" ([,.;:!?])(?= )"), r"\1"),  # word , word -> word, word
    (re.compile(r"(?<=s) '(?= )"), "'"),  # the players ' union -> the players' union
    (re.compile(r"(?: n't|n 't)\b"), "n't"),  # don 't / do n't -> don't
    (re.compile(r" '(s|re|ve|ll|m|d)\b"), r"'\1"),  # Teddy 's -> Teddy's ; you 're -> you're
    (re.compile(r"([(\[{]) +"), r"\1"),  # ( text -> (text
    (re.compile(r" +([)\]}])"), r"\1"),  # text ) -> text)
    (re.compile(r'" *([^"\n]*?) *"'), r'"\1"'),  # " Craig " -> "Craig" (pairs within a line)
    (re.compile(r" ° "), "°"),  # 5 ° N -> 5°N
    (re.compile(r"= (?==)"), "="),  # = = Section = = -> == Section ==
    (re.compile(r" *\n *"), "\n"),  # spaces at line edges
]


def wikitext_detokenizer(text: str) -> str:
    """Undo WikiText's tokenization artefacts, in the spirit of GPT-2's and lm-eval's.

    ``" @-@ "`` -> ``"-"``, ``" @,@ "`` -> ``","``, ``" @.@ "`` -> ``"."``, ``" , "`` ->
    ``", "`` (also ``. ; : ! ?``), ``" 's"`` -> ``"'s"`` (and ``'re 've 'll 'm 'd n't``),
    no spaces just inside brackets and double quotes, ``"= = "`` heading markers -> ``"=="``,
    no spaces at line edges. Same idea as lm-evaluation-harness's ``wikitext_detokenizer``,
    not byte-identical: quotes pair within a line, single quotes are not paired and PTB's
    ``" N "`` is left alone (WikiText uses ``N`` only as a real letter).
    """
    for pattern, replacement in _DETOKENIZE_RULES:
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


def _encode_all(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """``[prefix] + encode(text)`` as int64 arrays; uses ``encode_batch`` where it exists."""
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


def _batch_nll(
    model: Callable,
    seqs: Sequence[np.ndarray],
    jobs: Sequence[tuple[int, int, int, int]],
    device: torch.device,
) -> float:
    """Summed NLL of one batch of windows ``(doc, s, e, k)``, right-padded to equal length.

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
    return torch.cat(nll).cpu().double().sum().item()


def _check_options(context: int, batch_size: int, precision: str) -> None:
    if not isinstance(context, int) or context < 1:
        raise ConfigError("context", context, "a positive integer")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "a positive integer")
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, "one of " + ", ".join(PRECISIONS))


def evaluate_documents(
    model: Callable,
    tokenizer,
    docs: Sequence[str],
    context: int,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    stride: int | None = None,
    detokenize: bool = False,
    precision: str = "bf16",
    max_documents: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Score ``docs`` with ``model`` and return the summed NLL, the counts and the metrics.

    ``model`` maps a LongTensor ``(B, T)`` on ``device`` to logits ``(B, T, V)`` (our
    ``GPT``), or is a Hugging Face causal LM (its ``.logits`` are used). The model sees
    ``[prefix_id(tokenizer)] + encode(page)`` with ``page`` de-tokenized when
    ``detokenize``; the counts are those of the original page. Windows of all documents
    are sorted by length and batched ``batch_size`` at a time.
    """
    _check_options(context, batch_size, precision)
    device = torch.device(device)
    pages = list(docs[:max_documents] if max_documents is not None else docs)
    counts = _PageCounts()
    for page in pages:
        counts.add(page)
    fed = [wikitext_detokenizer(p) for p in pages] if detokenize else pages
    seqs = _encode_all(tokenizer, fed)
    jobs = [
        (d, *w) for d, seq in enumerate(seqs) for w in rolling_windows(len(seq), context, stride)
    ]
    jobs.sort(key=lambda j: j[2] - j[1], reverse=True)
    batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="eval", unit="batch")
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        # One autocast region for all batches: its cache casts each weight to bf16 only once.
        bf16 = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        with torch.inference_mode(), bf16:
            nll_sum = sum(_batch_nll(model, seqs, b, device) for b in batches)
    finally:
        if was_training:
            model.train()
    n_tokens = sum(len(s) - 1 for s in seqs)
    result = EvalResult(
        nll_sum=float(nll_sum),
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
            "precision": precision,
            "prefix_id": prefix_id(tokenizer),
        },
        **asdict(counts),
    )
    return result


def evaluate_split(model: Callable, tokenizer, split: data.Split, **kw) -> EvalResult:
    """``evaluate_documents`` on the split's articles (``data.documents``)."""
    result = evaluate_documents(model, tokenizer, data.documents(split.lines), **kw)
    result.settings.update(split=split.name, config=split.config, source=split.origin)
    return result


# --- GPT-2 baselines (optional extra: transformers) -----------------------------------------


def _offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set or huggingface.co cannot be reached within 1 s."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no"):
        return True
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=1.0):
            return False
    except OSError:
        return True


def _cached_on_disk(repo_id: str) -> bool:
    """Whether the Hugging Face cache already holds ``repo_id``'s ``config.json``."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an invalid repo id, or no huggingface_hub: not cached
        return False


def _weights_unavailable(name: str, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"GPT-2 weights for {name!r} are unavailable: {why}. The weights are not on disk and "
        "the Hugging Face hub is unreachable (or HF_HUB_OFFLINE is set); the book falls back "
        "to the published GPT-2 numbers."
    )


def load_gpt2(name_or_path: str, device: str | torch.device = "cpu"):
    """``(model, GPT2Tokenizer())`` for a pretrained GPT-2 (hub name or local folder).

    Fails fast with ``WeightsUnavailableError`` when transformers is missing or the weights
    are neither in a local folder nor in the Hugging Face cache while offline.
    """
    from .tokenizers import GPT2Tokenizer

    if importlib.util.find_spec("transformers") is None:
        raise _weights_unavailable(name_or_path, "transformers is not installed (extra 'gpt2')")
    local = Path(name_or_path).is_dir()
    offline = not local and _offline()
    if offline and not _cached_on_disk(name_or_path):
        raise _weights_unavailable(name_or_path, "no local copy in the Hugging Face cache")
    from transformers import GPT2LMHeadModel

    try:
        model = GPT2LMHeadModel.from_pretrained(name_or_path, local_files_only=offline or local)
    except (OSError, ValueError) as exc:
        raise _weights_unavailable(name_or_path, f"{type(exc).__name__}: {exc}") from exc
    return model.to(device).eval(), GPT2Tokenizer()


def gpt2_protocol(
    model: Callable, tokenizer, split: data.Split, context: int = 1024, **kw
) -> EvalResult:
    """GPT-2's WikiText protocol: de-tokenized pages, context 1024, non-overlapping windows.

    ``metrics["wikitext_word_perplexity"]`` = exp(nll_sum / WikiText words), the GPT-2
    paper's rescaling; ``metrics["word_perplexity"]`` = exp(nll_sum / whitespace words),
    lm-evaluation-harness's ``word_perplexity``.
    """
    return evaluate_split(model, tokenizer, split, context=context, detokenize=True, **kw)


def tiny_gpt2(seed: int = 0):
    """A randomly initialised 2-layer GPT-2 (d=64, 2 heads, 1024 positions, 50,257 ids)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=1024, vocab_size=50_257)
    return GPT2LMHeadModel(config).eval()


__all__ = [
    "EvalResult",
    "WeightsUnavailableError",
    "evaluate_documents",
    "evaluate_split",
    "gpt2_protocol",
    "load_gpt2",
    "prefix_id",
    "rolling_windows",
    "tiny_gpt2",
    "wikitext_detokenizer",
]
