"""The two scoring protocols: which pages of a raw WikiText-103 split each scores, and a
split scored under one.

- ``lm-eval``: lm-eval's ``wikitext`` task exactly: the pages of EleutherAI's
  ``wikitext_document_level`` (``data.documents``), fed through lm-eval's
  ``wikitext_detokenizer``, counted on the original pages;
- ``report``: ``data.report_documents``, the text the report's model was trained on, as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from h2q_lib.core.errors import ConfigError
from h2q_lib.data import wikitext as data
from h2q_lib.evaluation.checkpoint_identity import ScoringModel
from h2q_lib.evaluation.documents import EvalResult, evaluate_documents, resolve_precision

PROTOCOLS = ("lm-eval", "report")
EVAL_CONFIG = "wikitext-103-raw-v1"


def protocol_pages(split: data.Split, protocol: str) -> tuple[list[str], bool]:
    """``(pages, detokenize)`` of ``split`` under ``protocol`` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", protocol, "one of " + ", ".join(PROTOCOLS))
    if protocol == "lm-eval":
        return data.documents(split.lines), True
    return data.report_documents(split.lines), False


def score_split(
    scoring: ScoringModel,
    split: data.Split,
    protocol: str = "lm-eval",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    max_documents: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """``evaluate_documents`` of ``protocol_pages(split, protocol)`` at the model's context."""
    pages, detokenize = protocol_pages(split, protocol)
    choice = resolve_precision(device, precision)
    result = evaluate_documents(scoring.model, scoring.tokenizer, pages, context=scoring.context,
                                batch_size=batch_size, device=device, detokenize=detokenize,
                                precision=choice.precision, max_documents=max_documents,
                                progress=progress)
    result.settings.update(protocol=protocol, split=split.name, config=split.config,
                           source=split.origin, data_sha256=split.sha256(),
                           precision_reason=choice.reason)
    return result


def check_splits(splits: Sequence[str], name: str = "splits") -> tuple[str, ...]:
    """``splits`` as a tuple (one name may be given as a string); one ``ConfigError`` naming
    ``name`` when it is empty or holds a name that is not a split."""
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits:
        raise ConfigError(name, splits, "one or more of " + ", ".join(data.SPLITS))
    for split in splits:
        if split not in data.SPLITS:
            raise ConfigError(name, split, "one or more of " + ", ".join(data.SPLITS))
    return splits

