"""``h2q export --format hf``: a folder that transformers and ``lm_eval --model hf`` open alone.

A tiny char run is trained (a smoke recipe, fp32, CPU) and scored with ``h2q evaluate
--protocol lm-eval``; its export must load without ``h2q_lib``, give the project model's
logits (fp32, 1e-5) and the run tokenizer's ids (WikiText pages, unknown characters,
newlines, the literal text of the special tokens), and ``lm_eval --model hf`` on its
command line, offline, on the local copy of lm-eval's ``wikitext`` task must give the
same word perplexity, byte perplexity and bits per byte as ``h2q evaluate`` to 1e-6.
Both use the BOS id as the context-only first token of every page (lm-eval's
``prefix_token_id``: BOS, else EOS; ``evaluate.prefix_id``: the same), and both cut pages
into non-overlapping windows of the model's context, so no difference is left to explain.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from h2q_lib.core.errors import ConfigError, H2QError  # noqa: E402
from h2q_lib.data import wikitext as data  # noqa: E402
from h2q_lib.data.tokenizers import GPT2Tokenizer, WordTokenizer  # noqa: E402
from h2q_lib.evaluation.checkpoint_scores import evaluate_run  # noqa: E402
from h2q_lib.evaluation.documents import wikitext_detokenizer  # noqa: E402
from h2q_lib.export.errors import ExportError  # noqa: E402
from h2q_lib.export.gpt2_weights import hf_state_dict  # noqa: E402
from h2q_lib.export.hf_export import export_command, export_hf  # noqa: E402
from h2q_lib.model.gpt import GPT, GPTConfig  # noqa: E402
from h2q_lib.training.checkpoint import load_model, save_weights  # noqa: E402
from h2q_lib.training.profiles import RuntimeConfig, get_profile  # noqa: E402
from h2q_lib.training.trainer import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_PAGES = 2  # Robert Boulter and Du Fu (24 kB): many windows of a 128-character context
METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
# A small smoke run: 30 steps of a 1-layer char model, long enough to learn something.
SMOKE = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=128,
                    batch_size=4, grad_accum=1, steps=30, warmup=3, eval_every=30,
                    eval_batches=1, log_every=10, ckpt_every=30, sample_tokens=16)
# Characters outside the vocabulary, newlines, tabs and the specials' own text
ODD_TEXT = ("Zoë's café — naïve 漢字 😀\n\n\t<unk> <bos> <eos> <pad> <|endoftext|>\r\n"
            " = = Heading = = \n 1 @,@ 000 \\ ~ ` \x00 \u2028 end")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "PYTHONPATH": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def test_pages(data_dir) -> list[str]:
    return data.documents(data.load_split("test", data_dir=data_dir).lines)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir) -> Path:
    """A trained smoke run, scored by ``h2q evaluate --protocol lm-eval`` (first pages)."""
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    runtime = RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32",
                            attention="sdpa")
    train(SMOKE, run_dir, runtime)
    evaluate_run(run_dir, protocols=("lm-eval",), splits=("test",), max_documents=N_PAGES,
                 data_dir=data_dir, device="cpu", precision="fp32", batch_size=4)
    return run_dir


@pytest.fixture(scope="module")
def exported(smoke_run) -> Path:
    """``h2q export runs/smoke out --format hf``, run as a command."""
    _run([sys.executable, "-m", "h2q_lib.export.hf_export", "smoke", "out", "--format", "hf"],
         cwd=smoke_run.parent)
    return smoke_run.parent / "out"


# --- the folder ---------------------------------------------------------------------------------


def test_folder_has_a_gpt2_config_of_the_runs_shape(exported):
    assert {p.name for p in exported.iterdir()} == {
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json", "README.md", ".h2q-export"}
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert (config["n_layer"], config["n_head"], config["n_embd"], config["n_inner"],
            config["n_positions"], config["vocab_size"]) == (1, 2, 32, 64, 128, 127)
    # F.gelu is the exact GELU (GPT-2's default "gelu_new" is the tanh approximation);
    # nn.LayerNorm's eps is 1e-5
    assert config["activation_function"] == "gelu"
    assert config["layer_norm_epsilon"] == 1e-5
    assert config["tie_word_embeddings"] is True
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (2, 3, 0)
    generation = json.loads((exported / "generation_config.json").read_text())
    assert (generation["temperature"], generation["top_k"], generation["max_new_tokens"]) == (
        SMOKE.temperature, SMOKE.top_k, SMOKE.sample_tokens)


def test_model_card_states_recipe_metrics_in_bits_per_byte_and_per_character(exported,
                                                                             smoke_run):
    card = (exported / "README.md").read_text()
    stored = json.loads((smoke_run / "evaluation.json").read_text())
    bpb = stored["lm-eval"]["test"]["result"]["metrics"]["bits_per_byte"]
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "perplexity is per character" in card and "bits per byte" in card
    assert f"{bpb:.4f}" in card and "| `lr` | 0.002 |" in card
    assert "`<unk>`" in card and str(smoke_run) not in card  # no machine path


# --- equivalence: logits, token ids -------------------------------------------------------------


def test_exported_logits_equal_the_project_models(exported, smoke_run):
    from transformers import AutoModelForCausalLM

    ours, _, _ = load_model(smoke_run / "final_model.safetensors")
    theirs = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    x = torch.randint(0, 127, (3, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (theirs(x).logits - ours(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_exported_tokenizer_gives_the_runs_ids(exported, smoke_run, test_pages):
    from transformers import AutoTokenizer

    _, ours, _ = load_model(smoke_run / "final_model.safetensors")
    theirs = AutoTokenizer.from_pretrained(exported)
    texts = [ODD_TEXT, *test_pages[:3], *(wikitext_detokenizer(p) for p in test_pages[:3])]
    for text in texts:
        want = ours.encode(text).tolist()
        assert theirs(text)["input_ids"] == want
        assert theirs.encode(text) == want  # add_special_tokens=True adds nothing either
    assert ours.unk_id in ours.encode(ODD_TEXT)
    assert (theirs.bos_token_id, theirs.eos_token_id, theirs.unk_token_id) == (2, 3, 1)
    assert theirs.decode(ours.encode("the cat\n sat"), skip_special_tokens=True) == (
        "the cat\n sat")


def test_state_dict_mapping_transposes_linear_layers():
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, n_ff=16)
    state = GPT(cfg).state_dict()
    mapped = hf_state_dict(state, cfg.n_layer)
    assert torch.equal(mapped["transformer.h.1.attn.c_attn.weight"],
                       state["blocks.1.attn.qkv.weight"].t())
    assert mapped["transformer.h.0.mlp.c_fc.weight"].shape == (8, 16)
    assert len(mapped) == len(state) - 1  # the tied head is the embedding


# --- lm-eval's hf model on the command line against `h2q evaluate` -----------------------------


@pytest.mark.slow
def test_lm_eval_hf_on_the_export_reproduces_h2q_evaluate(exported, smoke_run, test_pages,
                                                          tmp_path):
    # the local copy of lm-eval's task
    harness = pytest.importorskip("h2q_lib.evaluation.lm_eval_adapter")
    lm_eval_cli = Path(sys.executable).parent / "lm_eval"
    if not lm_eval_cli.is_file():
        pytest.skip("lm-eval's command line is not installed (the test extra)")
    harness.write_wikitext_task(tmp_path / "task", {"test": test_pages[:N_PAGES]})
    _run([str(lm_eval_cli), "--model", "hf", "--model_args",
          f"pretrained={exported},dtype=float32", "--tasks", harness.WIKITEXT_TASK,
          "--include_path", str(tmp_path / "task"), "--device", "cpu", "--batch_size", "4",
          "--output_path", str(tmp_path / "out")], cwd=tmp_path)
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    theirs = json.loads(results_file.read_text())["results"][harness.WIKITEXT_TASK]
    ours = json.loads((smoke_run / "evaluation.json").read_text())["lm-eval"]["test"]["result"]
    assert ours["documents"] == N_PAGES and ours["settings"]["prefix_id"] == 2  # <bos>
    assert ours["tokens"] > 100 * SMOKE.block_size  # many windows
    for m in METRICS:
        assert math.isfinite(ours["metrics"][m])
        assert ours["metrics"][m] == pytest.approx(theirs[f"{m},none"], rel=1e-6), m


@pytest.mark.slow
def test_export_loads_and_generates_without_h2q_lib(exported, tmp_path):
    script = (
        "import sys\n"
        "class NoProject:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'h2q_lib':\n"
        "            raise ImportError('h2q_lib must not be needed')\n"
        "sys.meta_path.insert(0, NoProject())\n"
        "from transformers import pipeline\n"
        f"out = pipeline('text-generation', model={str(exported)!r})('The meaning of life is')\n"
        "text = out[0]['generated_text']\n"
        "assert text.startswith('The meaning of life is') and len(text) > 22, text\n"
        "print(repr(text))\n"
    )
    _run([sys.executable, "-c", script], cwd=tmp_path)


# --- a GPT-2-tokenizer checkpoint ---------------------------------------------------------------


def test_gpt2_tokenizer_checkpoint_exports_gpt2_bpe(tmp_path, test_pages):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = GPT2Tokenizer()
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2,
                    n_embd=8, n_ff=16)
    model = GPT(cfg).eval()
    save_weights(tmp_path / "gpt2.safetensors", model,
                 {"tokenizer": tokenizer.to_dict(), "model_args": cfg.to_dict()})
    out = export_hf(tmp_path / "gpt2.safetensors", tmp_path / "out")
    assert {"vocab.json", "merges.txt", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    theirs = AutoTokenizer.from_pretrained(out)
    for text in (ODD_TEXT, *test_pages[:2]):
        assert theirs(text)["input_ids"] == tokenizer.encode(text).tolist()
    assert theirs.bos_token_id == theirs.eos_token_id == 50_256
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    x = torch.tensor([tokenizer.encode(test_pages[0][:200]).tolist()[:32]])
    with torch.no_grad():
        assert (hf(x).logits - model(x)).abs().max().item() <= 1e-5


# --- bad input: one line each, nothing written --------------------------------------------------


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    from h2q_lib.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["some text\n"], vocab_size=12)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2,
                    n_embd=8, n_ff=16)
    path = tmp_path / "small.safetensors"
    save_weights(path, GPT(cfg), {"tokenizer": tokenizer.to_dict(), "model_args": cfg.to_dict()})
    return path


def test_bad_arguments_are_one_config_error(small_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="--format='onnx'"):
        export_command(str(small_checkpoint), str(tmp_path / "out"), format="onnx")
    with pytest.raises(ConfigError, match="RUN_OR_CHECKPOINT='missing'"):
        export_command("missing", str(tmp_path / "out"))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="OUT=.*it is a file"):
        export_command(str(small_checkpoint), str(tmp_path / "a_file"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="OUT=.*holds notes.txt"):
        export_command(str(small_checkpoint), str(busy))
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    with pytest.raises(ConfigError, match="OUT="):
        export_command(str(small_checkpoint), str(tmp_path / "no" / "such" / "out"))
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary folder left


def _card_example(folder: Path) -> str:
    """The model card's Python example, as a reader would paste it."""
    card = (folder / "README.md").read_text()
    return card.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("prompt_chars", [22, 60, 1_000])
def test_the_cards_example_generates_for_a_prompt_longer_than_the_context(
        small_checkpoint, tmp_path, prompt_chars):
    """issue #38 row 15: ``max_new_tokens`` was the run's sample length (200 when none was
    recorded) whatever the context, so the card's own example raised ``IndexError`` for a
    16- or 32-position model, and for the smoke export any prompt of 50 characters or more."""
    out = export_hf(small_checkpoint, tmp_path / "out")
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 8  # half of the 16-token context
    prompt = ("some text " * 200)[:prompt_chars]
    code = _card_example(out).replace('model="out"', f"model={str(out)!r}").replace(
        '"The meaning of life is"', repr(prompt)).replace("print(", "result = (")
    assert "handle_long_generation" in code and f"{out}" in code
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the card's own example, run as a reader runs it
    text = scope["result"][0]["generated_text"]
    assert len(text) > 0


def test_export_over_an_earlier_export_replaces_it(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    export_command(str(small_checkpoint), str(out))
    (out / "README.md").write_text("stale")
    export_command(str(small_checkpoint), str(out))
    assert (out / "README.md").read_text().startswith("---")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "small.safetensors"]
    assert "wrote" in capsys.readouterr().out


def test_word_tokenizer_checkpoint_is_refused_in_one_line(tmp_path):
    tokenizer = WordTokenizer(["the", "cat"])
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1,
                    n_embd=4, n_ff=8)
    path = tmp_path / "word.safetensors"
    save_weights(path, GPT(cfg), {"tokenizer": tokenizer.to_dict(), "model_args": cfg.to_dict()})
    with pytest.raises(ExportError, match="'word50k' tokenizer"):
        export_hf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_main_prints_one_line_on_bad_input(tmp_path, capsys):
    from h2q_lib.export.hf_export import main

    assert main(["nothing", str(tmp_path / "out"), "--format", "hf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("h2q: error: RUN_OR_CHECKPOINT='nothing'") and err.count("\n") == 1
    assert issubclass(ExportError, H2QError)
