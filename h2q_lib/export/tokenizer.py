"""The run's tokenizer as a transformers fast tokenizer that gives the same ids: a
character-level ``tokenizers`` model for ``char``, GPT-2's BPE files for ``gpt2``."""

from __future__ import annotations

import json
from pathlib import Path

from h2q_lib.export.errors import ExportError

EXPORTABLE_TOKENIZERS = ("char", "gpt2")


def char_backend(tokenizer):
    """A ``tokenizers.Tokenizer`` that encodes as ``CharTokenizer.encode`` does.

    Every character (newlines included: ``[\\s\\S]``) is one piece; a word-level model maps
    it to its id, a character outside the vocabulary to ``<unk>``. No normalizer and no
    post-processor: nothing is added or changed, as in the run's ``encode``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(tokenizer.itos)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # characters join without spaces
    return backend


def hf_tokenizer(tokenizer, context: int, folder: Path):
    """A transformers fast tokenizer that gives the run tokenizer's ids, saved in ``folder``.

    ``split_special_tokens=True``: the text ``<unk>`` (or ``<|endoftext|>``) in a page is
    encoded as the characters (bytes) it is made of, as the run's tokenizer does; only the
    ids themselves are the specials.
    """
    from transformers import PreTrainedTokenizerFast

    if tokenizer.name == "char":
        hf = PreTrainedTokenizerFast(
            tokenizer_object=char_backend(tokenizer), bos_token="<bos>", eos_token="<eos>",
            unk_token="<unk>", pad_token="<pad>", split_special_tokens=True,
            clean_up_tokenization_spaces=False, model_max_length=context)
    elif tokenizer.name == "gpt2":
        from h2q_lib.model.gpt2 import hf_gpt2_tokenizer

        hf = hf_gpt2_tokenizer(folder)  # also copies vocab.json and merges.txt into folder
        hf.model_max_length = context
    else:
        raise ExportError(f"a {tokenizer.name!r} tokenizer has no Hugging Face form here: "
                          f"export supports the {' and '.join(EXPORTABLE_TOKENIZERS)} tokenizers")
    hf.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # transformers 5 writes its own class names; the older ones load in transformers 4 and 5
    config["tokenizer_class"] = ("GPT2TokenizerFast" if tokenizer.name == "gpt2"
                                 else "PreTrainedTokenizerFast")
    config["split_special_tokens"] = True  # save_pretrained keeps only __init__ arguments
    for key in ("is_local", "local_files_only"):  # where this copy was read from
        config.pop(key, None)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return hf
