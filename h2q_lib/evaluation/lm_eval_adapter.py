"""A project checkpoint as an lm-evaluation-harness model, registered as ``h2q``.

Importing this module registers ``H2QLM`` under the name ``h2q`` in lm-eval's model registry.
lm-eval 0.4.13 finds models only in that registry (it reads no plugin entry points), so its
command line is run through this module, which registers the model first and then hands
its arguments to lm-eval's own command line unchanged::

    python -m h2q_lib.evaluation.lm_eval_adapter --model h2q \\
        --model_args checkpoint=runs/x/final_model.safetensors,device=cpu --tasks wikitext

From Python: ``import h2q_lib.evaluation.lm_eval_adapter`` and then
``lm_eval.simple_evaluate(model="h2q",
model_args={"checkpoint": ...}, tasks=[...])``, or pass an ``H2QLM(...)`` as ``model``.

``loglikelihood_rolling`` is the project's evaluator (``evaluate.score_jobs``): the same
windows (``evaluate.rolling_windows``: non-overlapping, the model's context) and the same
prefix token (``evaluate.prefix_id``), so lm-eval's ``wikitext`` task and
``scores.evaluate_checkpoint(protocol="lm-eval")`` give the same numbers.
``write_wikitext_task`` writes a local copy of that task for machines without the hub.

lm-eval is optional (the ``test`` extra); only this module needs it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

try:
    import lm_eval.models  # noqa: F401  (registers lm-eval's own models first, see below)
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("h2q_lib.evaluation.lm_eval_adapter needs lm-evaluation-harness: pip install "
                      "'lm-eval==0.4.13' (part of the project's 'test' extra)") from exc

from h2q_lib.core.errors import ConfigError
from h2q_lib.data import wikitext as data
from h2q_lib.evaluation.checkpoint_identity import load_scoring_model
from h2q_lib.evaluation.documents import (
    _logits,
    as_device,
    encode_with_prefix,
    prefix_id,
    resolve_precision,
    rolling_windows,
    score_jobs,
)
from h2q_lib.evaluation.protocols import EVAL_CONFIG
from h2q_lib.model.gpt import GPT
from h2q_lib.training.hardware import autocast, available_devices, pick_device

MODEL_NAME = "h2q"
WIKITEXT_TASK = "wikitext_h2q_local"
DEFAULT_BATCH_SIZE = 8


def _batch_size(value: object) -> int:
    """lm-eval passes ``--batch_size`` as given (``8``, ``"8"``, ``"auto"``) or None."""
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError("batch_size", value, "a positive integer or auto") from None
    if number < 1:
        raise ConfigError("batch_size", value, "a positive integer or auto")
    return number


def _whole(name: str, value: object, least: int) -> int:
    """An integer model_arg (given as text by lm-eval) of at least ``least``, or one line."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < least or number >= 2**63:
        raise ConfigError(name, value, f"an integer from {least} to 2**63 - 1")
    return number


# what --model_args may set (model=, tokenizer= and context= are for Python callers)
MODEL_ARGS = ("checkpoint", "device", "precision", "batch_size", "max_batch_size",
              "max_gen_toks", "seed")


class H2QLM(TemplateLM):
    """lm-eval's model interface over a project checkpoint (or a GPT-2).

    ``checkpoint``: a ``.safetensors``/``.pt`` file, a GPT-2 folder or a GPT-2 hub name
    (``scores.load_scoring_model``); or, from Python, ``model``, ``tokenizer`` and
    ``context`` directly. ``device`` and ``precision`` (``auto``, ``bf16``, ``fp32``) follow
    the project's rules (``hardware.pick_device``, ``evaluate.resolve_precision``).
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str | None = "auto",
        precision: str = "auto",
        batch_size: int | str | None = DEFAULT_BATCH_SIZE,
        max_batch_size: int | None = None,  # lm-eval passes it; windows are batched as asked
        max_gen_toks: int = 256,
        seed: int = 1234,
        model: torch.nn.Module | None = None,
        tokenizer=None,
        context: int | None = None,
    ):
        super().__init__()
        _whole("max_gen_toks", max_gen_toks, 1)  # bad values fail before the model loads
        _whole("seed", seed, 0)
        device = as_device(pick_device("auto") if device in (None, "auto") else device)
        if device.type not in available_devices():
            raise ConfigError("device", str(device),
                              "one available here: auto, " + ", ".join(available_devices()))
        self.precision = resolve_precision(device, precision)  # bad options fail before loading
        self.batch_size_per_gpu = _batch_size(batch_size)
        if model is None:
            if checkpoint is None:
                raise ConfigError("checkpoint", None, "a checkpoint path (model_args "
                                  "checkpoint=...), or model=, tokenizer= and context=")
            scoring = load_scoring_model(checkpoint, device)
            model, tokenizer, context = scoring.model, scoring.tokenizer, scoring.context
        elif tokenizer is None or context is None:
            raise ConfigError("tokenizer/context", None,
                              "both given with model= (the model's tokenizer and context)")
        self.model = model.to(device).eval()
        self.h2q_tokenizer = tokenizer
        self._device = device
        self._max_length = int(context)
        self._max_gen_toks = _whole("max_gen_toks", max_gen_toks, 1)
        self.generator = torch.Generator().manual_seed(_whole("seed", seed, 0))

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None
                            ) -> H2QLM:
        """``H2QLM(**model_args)``, with lm-eval's ``--device``/``--batch_size`` where the
        model_args do not say.

        lm-eval passes those two flags with defaults of its own (``cuda:0``, 1) next to the
        model_args, so ``device=cpu`` in both would be one argument given twice: the
        model_args win. Like lm-eval's ``hf`` model, its ``cuda:0`` default falls back to
        the project's own pick (``auto``) on a machine without CUDA.
        """
        unknown = sorted(set(arg_dict) - set(MODEL_ARGS))
        if unknown:
            raise ConfigError("model_args", ",".join(unknown),
                              "keys among " + ", ".join(MODEL_ARGS))
        extra = {k: v for k, v in (additional_config or {}).items()
                 if v is not None and k not in arg_dict}
        if "device" in extra and torch.device(extra["device"]).type not in available_devices():
            extra["device"] = "auto"
        return cls(**arg_dict, **extra)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None
                               ) -> H2QLM:
        """``create_from_arg_obj`` of ``key=value,key=value`` (lm-eval's ``--model_args``)."""
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    # --- what lm-eval asks of a model ---------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        eos = getattr(self.h2q_tokenizer, "eos_id", None)
        return int(eos) if eos is not None else self.prefix_token_id

    @property
    def prefix_token_id(self) -> int:
        return prefix_id(self.h2q_tokenizer)

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    def get_model_info(self) -> dict:
        return {"h2q_tokenizer": getattr(self.h2q_tokenizer, "name", "?"),
                "context": self.max_length, "precision": self.precision.precision,
                "precision_reason": self.precision.reason}

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs
                   ) -> list[int]:
        return np.asarray(self.h2q_tokenizer.encode(string)).tolist()

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.h2q_tokenizer.decode(list(tokens))

    def _score(self, seqs: list[np.ndarray], jobs: list, greedy: bool = False):
        return score_jobs(self.model, seqs, jobs, self.batch_size, self.device,
                          self.precision.precision, greedy=greedy)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """ln p(string | prefix) of each request: ``-nll`` of ``[prefix] + encode(string)``
        over ``rolling_windows(len, max_length)``, as ``evaluate.evaluate_documents``."""
        strings = [req.args[0] for req in requests]
        seqs = encode_with_prefix(self.h2q_tokenizer, strings)
        jobs = [(d, *w) for d, seq in enumerate(seqs)
                for w in rolling_windows(len(seq), self.max_length)]
        nll, _ = self._score(seqs, jobs)
        per_string = np.zeros(len(seqs), dtype=np.float64)
        np.add.at(per_string, np.asarray([j[0] for j in jobs], dtype=np.int64), nll)
        out = [-float(x) for x in per_string]
        for string, loglikelihood in zip(strings, out, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), loglikelihood)
        return out

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs
                              ) -> list[tuple[float, bool]]:
        """``(ln p(continuation | context), greedy)`` of each ``((ctx, cont), ctx_ids, cont_ids)``.

        One window over ``ctx_ids + cont_ids`` (its last ``max_length + 1`` ids: the context
        is cut from the left, as lm-eval's ``hf`` model does) scores the continuation's ids.
        """
        seqs, jobs = [], []
        for d, (_, context_ids, continuation_ids) in enumerate(requests):
            seq = np.asarray(list(context_ids) + list(continuation_ids), dtype=np.int64)
            n, m = len(seq), len(continuation_ids)
            if not 1 <= m <= self.max_length or n == m:
                raise ConfigError("continuation", f"{m} tokens after {n - m} context tokens",
                                  f"1 to {self.max_length} tokens after at least one")
            end = n - 1
            start = max(0, end - self.max_length)
            seqs.append(seq)
            jobs.append((d, start, end, n - m - 1 - start))
        nll, greedy = self._score(seqs, jobs, greedy=True)
        out = [(-float(x), bool(g)) for x, g in zip(nll, greedy, strict=True)]
        for (pair, _, _), answer in zip(requests, out, strict=True):
            self.cache_hook.add_partial("loglikelihood", pair, answer)
        return out

    # --- generation ---------------------------------------------------------------------

    def _next_id(self, ids: torch.Tensor, sample: bool, temperature: float,
                 top_k: int | None) -> int:
        """One more id: greedy (the argmax), or sampled at ``temperature`` from the top ``top_k``.

        Our GPT samples with ``GPT.generate`` (top_k=1 is greedy); other models (GPT-2) the
        same way from their logits.
        """
        if isinstance(self.model, GPT):
            step = self.model.generate(ids, 1, temperature=temperature if sample else 1.0,
                                       top_k=top_k if sample else 1, generator=self.generator)
            return int(step[0, -1])
        logits = _logits(self.model, ids[:, -self.max_length:])[0, -1].float()
        if not sample:
            return int(logits.argmax())
        logits = logits / max(temperature, 1e-6)
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits[logits < kth] = -float("inf")
        probs = torch.softmax(logits, -1).cpu()
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def _generate(self, context: str, until: list[str], max_new: int, sample: bool,
                  temperature: float, top_k: int | None) -> str:
        context_ids = self.tok_encode(context) or [self.prefix_token_id]
        ids = torch.tensor([context_ids[-self.max_length:]], dtype=torch.long,
                           device=self.device)
        eos = getattr(self.h2q_tokenizer, "eos_id", None)
        new: list[int] = []
        with torch.inference_mode(), autocast(self.device.type, self.precision.precision):
            for _ in range(max_new):
                nxt = self._next_id(ids, sample, temperature, top_k)
                if eos is not None and nxt == eos:
                    break
                new.append(nxt)
                ids = torch.cat([ids, torch.tensor([[nxt]], device=self.device)], dim=1)
                if until and any(stop in self.tok_decode(new) for stop in until):
                    break
        text = self.tok_decode(new)
        cut = min((text.index(stop) for stop in until if stop in text), default=len(text))
        return text[:cut]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Continue each context until one of ``until``, EOS or ``max_gen_toks`` new ids.

        ``gen_kwargs``: ``until`` (a string or list), ``max_gen_toks``, ``do_sample``
        (default False: greedy), ``temperature`` (0 is greedy), ``top_k``.
        """
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else [u for u in until if u]
            temperature = float(kwargs.get("temperature", 1.0 if kwargs.get("do_sample")
                                           else 0.0))
            sample = bool(kwargs.get("do_sample", False)) and temperature > 0
            top_k = kwargs.get("top_k")
            text = self._generate(context, until, int(kwargs.get("max_gen_toks",
                                                                 self.max_gen_toks)),
                                  sample, temperature, int(top_k) if top_k else None)
            out.append(text)
            self.cache_hook.add_partial("generate_until", req.args, text)
        return out


# ``python -m h2q_lib.evaluation.lm_eval_adapter`` runs this file as ``__main__`` and then
# imports it under its own name (below): only that module registers, so the name is
# registered once.
if __name__ != "__main__":
    register_model(MODEL_NAME)(H2QLM)


# --- a local copy of lm-eval's wikitext task -------------------------------------------------


def wikitext_task_yaml() -> Path:
    """The installed lm-eval's ``wikitext`` task file (its detokenizer and metrics)."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / "wikitext" / "wikitext.yaml"


def write_wikitext_task(
    folder: str | os.PathLike,
    pages: dict[str, Sequence[str]] | None = None,
    data_dir: str | os.PathLike | None = None,
    task: str = WIKITEXT_TASK,
    test_split: str = "test",
) -> Path:
    """Write lm-eval's ``wikitext`` task, reading local pages, into ``folder``.

    The task file includes the installed ``wikitext.yaml`` (so its detokenizer, word and
    byte counts and metrics are lm-eval's own) and replaces only its name and its data:
    ``<folder>/<split>.jsonl`` with one ``{"page": ...}`` a line, ``pages[split]`` or, by
    default, ``data.documents`` of the raw WikiText-103 validation and test splits (the
    same pages as EleutherAI's ``wikitext_document_level``). lm-eval scores
    ``test_split``. Use it offline with ``--include_path <folder> --tasks <task>``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if pages is None:
        pages = {name: data.documents(data.load_split(name, EVAL_CONFIG, data_dir).lines)
                 for name in ("validation", "test")}
    if test_split not in pages:
        raise ConfigError("test_split", test_split, "one of the splits given: "
                          + ", ".join(pages))
    files = {}
    for split, split_pages in pages.items():
        path = (folder / f"{split}.jsonl").resolve()
        path.write_text("".join(json.dumps({"page": p}) + "\n" for p in split_pages),
                        encoding="utf-8")
        files[split] = str(path)
    config = {"include": str(wikitext_task_yaml()), "task": task, "dataset_path": "json",
              "dataset_name": None, "dataset_kwargs": {"data_files": files},
              "training_split": None, "validation_split": None, "test_split": test_split}
    path = folder / f"{task}.yaml"
    # JSON is YAML: no quoting rules to get wrong for paths
    path.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return path


def _with_device(argv: list[str]) -> list[str]:
    """``argv`` with ``--device`` set to where the ``h2q`` model runs, when not given, so that
    lm-eval's results record the device truthfully (not its ``cuda:0`` default)."""
    joined = " ".join(argv)
    if "--device" in argv or "--device=" in joined or not any(
            a in ("h2q", "--model=h2q") for a in argv):
        return argv
    import re

    asked = re.search(r"(?:^|[\s,])device=([^,\s]+)", joined)
    device = asked.group(1) if asked and asked.group(1) != "auto" else pick_device("auto")
    return [*argv, "--device", device]


def main(argv: list[str] | None = None) -> None:
    """lm-eval's command line with the ``h2q`` model registered (``lm_eval --help``).

    A bad ``--model_args`` value (or a checkpoint that cannot be used) ends with one line
    naming it and exit status 2, as ``h2q`` does.
    """
    from lm_eval.__main__ import cli_evaluate

    from h2q_lib.core.errors import H2QError

    sys.argv = [sys.argv[0], *_with_device(sys.argv[1:] if argv is None else list(argv))]
    try:
        cli_evaluate()
    except H2QError as e:
        print(f"h2q_lib.evaluation.lm_eval_adapter: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    import h2q_lib.evaluation.lm_eval_adapter as registered  # registers ``h2q`` (see above)

    registered.main()
