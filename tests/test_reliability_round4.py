"""Reliability, round four (issue #38): records and a user's folders are never trained or
exported over, interrupts reach the trainer, and evaluation defaults give lm-eval's numbers.

Each test is one row of the issue's table (``row N`` in its docstring) and failed on the code
the issue was filed against. Most tests copy one tiny finished run (``base``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from h2q_lib import cli
from h2q_lib.cli import main as cli_main
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import RunFolderError
from h2q_lib.training import trainer as train_mod
from h2q_lib.training.profiles import RuntimeConfig, TrainConfig, get_profile
from h2q_lib.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TINY = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                   batch_size=4, grad_accum=1, steps=6, warmup=1, eval_every=2,
                   eval_batches=1, log_every=1, ckpt_every=2, sample_tokens=8)


@pytest.fixture(scope="module")
def runtime(data_dir) -> RuntimeConfig:
    return RuntimeConfig(data_dir=str(data_dir), quiet=True, device="cpu", precision="fp32",
                         attention="sdpa")


@pytest.fixture(scope="module")
def base(tmp_path_factory, runtime) -> Path:
    """A finished tiny run: 6 steps, checkpoints at steps 2, 4, 6."""
    run = tmp_path_factory.mktemp("base") / "run"
    train(TINY, run, runtime)
    return run


@pytest.fixture
def finished(base, tmp_path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "run"))


@pytest.fixture
def records_only(finished) -> Path:
    """The tiny run as a committed run folder keeps it: records, no weights, no caches."""
    for name in ("checkpoints", "token_cache"):
        shutil.rmtree(finished / name)
    (finished / "final_model.safetensors").unlink()
    return finished


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the (empty) lock a command holds while it reads the folder."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != runs.LOCK}


def one_line(e: pytest.ExceptionInfo | BaseException) -> str:
    msg = str(e.value if isinstance(e, pytest.ExceptionInfo) else e)
    assert msg and "\n" not in msg, msg
    return msg


@pytest.fixture
def no_training(monkeypatch):
    """Fail at once where the old code went on to train (data loading is its first step)."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(train_mod, "prepare_data", refuse)


# --- row 1: a folder with records but no checkpoint is never trained from step 0 -------------


def _damage(run: Path, how: str) -> None:
    config = run / "config.json"
    if how == "summary missing":
        (run / "summary.json").unlink()
    elif how == "config truncated":
        config.write_bytes(config.read_bytes()[:40])
    elif how == "config merge conflict":
        text = config.read_text()
        config.write_text("<<<<<<< HEAD\n" + text + "=======\n" + text + ">>>>>>> other\n")
    elif how == "config a list":
        config.write_text("[]\n")
    elif how == "config missing":
        config.unlink()


@pytest.mark.parametrize("how", ["extend", "summary missing", "config truncated",
                                 "config merge conflict", "config a list", "config missing"])
def test_records_without_a_checkpoint_are_never_trained_from_step_0(records_only, runtime,
                                                                     how):
    """row 1: committed run folders (records, no weights) are read, never retrained."""
    cfg = TINY
    if how == "extend":
        cfg = TrainConfig.from_dict({**TINY.to_dict(), "steps": 8})
    else:
        _damage(records_only, how)
    before = snapshot(records_only)
    with pytest.raises(RunFolderError) as e:
        train(cfg, records_only, runtime, extend=how == "extend")
    msg = one_line(e)
    assert "not trained again from step 0" in msg and "nothing was changed" in msg
    if how == "extend":
        assert "cannot be extended without its weights" in msg
    elif how.startswith("config"):
        assert "config.json is" in msg
    else:
        assert "summary.json is missing" in msg
    assert snapshot(records_only) == before


def test_extending_a_committed_run_folder_is_one_line_and_keeps_it(tmp_path, data_dir, capsys,
                                                                  no_training):
    """row 1: the issue's own command on a copy of runs/control-seed."""
    run = Path(shutil.copytree(ROOT / "runs" / "control-seed", tmp_path / "control-seed"))
    before = snapshot(run)
    rc = cli_main(["train", "--profile", "prefix", "--steps", "200", "--seed", "1338",
                   "--extend", "--run-dir", str(run), "--data-dir", str(data_dir),
                   "--device", "cpu", "--quiet", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "without its weights" in err, err
    assert snapshot(run) == before


def test_a_run_stopped_before_its_first_checkpoint_is_trained_again(base, tmp_path, runtime):
    """row 1's boundary: records before the first checkpoint are the ones step 1 writes again."""
    run = tmp_path / "run"
    train(TINY, run, runtime, stop_after=1)
    assert not any((run / "checkpoints").glob("*.pt"))
    assert train(TINY, run, runtime)["steps"] == TINY.steps
    assert runs.read_jsonl(run / "log.jsonl") != []


# --- row 2: a non-empty folder without the marker is never adopted ----------------------------


def test_a_users_folder_is_never_adopted_as_a_run_folder(tmp_path, runtime, no_training):
    """row 2: six files of the user's under the names a run writes stay as they were."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("log.jsonl", "summary.json", "evaluation.json", "samples.jsonl",
                 "config.json", "tokenizer.json"):
        (folder / name).write_text(f"the user's {name}\n")
    before = snapshot(folder)
    with pytest.raises(RunFolderError, match="not a run folder made by h2q") as e:
        train(TINY, folder, runtime)
    one_line(e)
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(
        before)


def test_an_empty_run_dir_is_refused_not_the_working_folder(tmp_path, runtime, monkeypatch,
                                                             no_training):
    """row 2: papermill's ``-p run_dir ''`` would have trained into its working folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="run_dir") as e:
        train(TINY, "", runtime)
    one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_a_pre_registered_run_folder_is_adopted(tmp_path, runtime):
    """row 2's boundary: ``h2q predict`` writes prediction.json before the run starts."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "prediction.json").write_text("{}\n")
    runs.prepare_run_folder(folder)
    assert runs.is_run_folder(folder) and (folder / "prediction.json").read_text() == "{}\n"


# --- row 4: --restart removes nothing before every value is checked ---------------------------


@pytest.mark.parametrize("flags,needle", [
    (["--micro-batch", "3"], "micro_batch"),
    (["--data-dir", "missing-folder"], "missing-folder"),
])
def test_restart_checks_every_value_before_removing_the_run(finished, data_dir, capsys,
                                                           monkeypatch, flags, needle):
    """row 4: the run is still there after a bad value."""
    monkeypatch.chdir(finished.parent)
    before = snapshot(finished)
    argv = ["train", "--profile", "smoke", "--run-dir", "run", "--restart", "--device", "cpu",
            "--data-dir", str(data_dir), "--quiet", "1"]
    for key, value in TINY.to_dict().items():
        if value is not None and key != "tokenizer":
            argv += ["--" + key.replace("_", "-"), str(value)]
    rc = cli_main(argv + flags)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and needle in err, err
    assert snapshot(finished) == before



# --- rows 3, 6, 10: h2q export replaces only its own exports ----------------------------------


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    from h2q_lib.data.tokenizers import CharTokenizer
    from h2q_lib.model.gpt import GPT, GPTConfig
    from h2q_lib.training.checkpoint import save_weights

    pytest.importorskip("transformers")
    tokenizer = CharTokenizer.train(["some text\n"], vocab_size=12)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2,
                    n_embd=8, n_ff=16)
    path = tmp_path / "small.safetensors"
    save_weights(path, GPT(cfg), {"tokenizer": tokenizer.to_dict(), "model_args": cfg.to_dict()})
    return path


@pytest.mark.parametrize("files", [
    {"README.md": "my notes\n"},
    {"README.md": "my model\n", "config.json": "{}\n", "model.safetensors": "weights"},
])
def test_export_never_replaces_a_folder_it_did_not_write(small_checkpoint, tmp_path, files):
    """row 3: a user's save_pretrained folder (or one holding only a README) stays."""
    from h2q_lib.export.hf_export import export_hf

    out = tmp_path / "mine"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    before = snapshot(out)
    with pytest.raises(ConfigError, match="not written by h2q export") as e:
        export_hf(small_checkpoint, out)
    one_line(e)
    assert snapshot(out) == before and not list(tmp_path.glob(".mine.*"))


def test_export_replaces_its_own_earlier_export(small_checkpoint, tmp_path):
    """row 3's boundary: an earlier export carries the marker and is replaced."""
    from h2q_lib.export.hf_export import export_hf
    from h2q_lib.export.safe_folder import EXPORT_MARKER

    out = export_hf(small_checkpoint, tmp_path / "out")
    assert (out / EXPORT_MARKER).is_file()
    (out / "README.md").write_text("stale")
    export_hf(small_checkpoint, out)
    assert (out / "README.md").read_text().startswith("---")


def test_temporaries_of_a_killed_export_are_removed_by_the_next(small_checkpoint, tmp_path):
    """row 6: what kill -9 left (``.OUT.*.tmp/``, ``.OUT.*.old/``) goes; a user's look-alike
    without the marker stays."""
    from h2q_lib.export.hf_export import export_hf
    from h2q_lib.export.safe_folder import EXPORT_MARKER

    left_tmp = tmp_path / ".out.abcd1234.tmp"
    left_old = tmp_path / ".out.efgh5678.old" / "export"
    for folder in (left_tmp, left_old):
        folder.mkdir(parents=True)
        (folder / EXPORT_MARKER).write_text("h2q-export-1\n")
        (folder / "config.json").write_text("{}")
    users = tmp_path / ".out.zzzz9999.tmp"
    users.mkdir()
    (users / "draft.txt").write_text("mine")
    export_hf(small_checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".out.zzzz9999.tmp", "out", "small.safetensors"])


def test_sigterm_during_an_export_leaves_no_temporary(small_checkpoint, tmp_path, monkeypatch):
    """row 6: SIGTERM is handled as Ctrl-C: one line, exit 143, nothing left behind."""
    import os
    import signal

    from h2q_lib.export import hf_export as export_mod
    from h2q_lib.export.errors import ExportInterrupted

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(export_mod, "check_export", killed)
    with pytest.raises(ExportInterrupted) as e:
        export_mod.export_hf(small_checkpoint, tmp_path / "out")
    one_line(e)
    assert e.value.exit_code == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.safetensors"]


def test_export_into_an_existing_empty_folder_and_the_working_folder(small_checkpoint,
                                                                     tmp_path, monkeypatch):
    """row 10: OUT ``.`` and an existing empty OUT are written into; a dangling symbolic
    link is one line."""
    from h2q_lib.export.hf_export import export_hf
    from h2q_lib.export.safe_folder import EXPORT_MARKER

    empty = tmp_path / "empty"
    empty.mkdir()
    export_hf(small_checkpoint, empty)
    assert (empty / EXPORT_MARKER).is_file() and (empty / "config.json").is_file()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    export_hf(small_checkpoint, ".")
    assert (here / "config.json").is_file() and not list(tmp_path.glob(".*.tmp"))
    export_hf(small_checkpoint, ".")  # again: the earlier export in "." is replaced
    assert not list(tmp_path.glob(".*.old"))
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link") as e:
        export_hf(small_checkpoint, link)
    one_line(e)
    assert not (tmp_path / "nowhere").exists()


# --- row 21: scoring defaults to fp32, never chosen by a timing probe -------------------------


def test_scoring_defaults_to_fp32_whatever_a_timing_probe_says(monkeypatch):
    """row 21: a probe that finds bf16 10x faster no longer changes the scoring precision."""
    from h2q_lib.cli import build_parser
    from h2q_lib.evaluation.documents import resolve_precision
    from h2q_lib.training import hardware

    def probe(*args, **kwargs):
        raise AssertionError("scoring ran the timing probe")
    monkeypatch.setattr(hardware, "measured_bf16_speedup", probe)
    choice = resolve_precision("cpu", "auto")
    assert choice.precision == "fp32" and "lm-evaluation-harness" in choice.reason
    assert build_parser().parse_args(["evaluate", "x"]).precision == "fp32"
    assert resolve_precision("cpu", "bf16").precision == "bf16"  # faster only when asked


# --- row 23: a Hugging Face folder is scored with its own tokenizer ---------------------------


@pytest.fixture
def char_export(small_checkpoint, tmp_path) -> Path:
    from h2q_lib.export.hf_export import export_hf

    return export_hf(small_checkpoint, tmp_path / "export")


def test_a_char_export_is_scored_with_its_own_tokenizer(small_checkpoint, char_export,
                                                         data_dir, tmp_path):
    """row 23: ``h2q evaluate EXPORT`` of a char export gives the checkpoint's own scores
    (it raised IndexError: GPT-2's BPE ids beyond the 12-id vocabulary)."""
    from h2q_lib.evaluation.evaluate_command import evaluate_command

    scores = {}
    for name, source in (("export", char_export), ("checkpoint", small_checkpoint)):
        stored = evaluate_command(str(source), splits=["validation"], max_documents="1",
                                  device="cpu", data_dir=str(data_dir),
                                  out=str(tmp_path / f"{name}.json"))
        scores[name] = stored["lm-eval"]["validation"]["result"]
    a, b = scores["export"], scores["checkpoint"]
    assert a["tokens"] == b["tokens"]
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert a["metrics"][metric] == pytest.approx(b["metrics"][metric], rel=1e-6)


def test_the_harness_reads_a_char_export_with_its_own_tokenizer(small_checkpoint,
                                                                 char_export):
    """row 23: the lm-eval adapter encodes as the run's tokenizer does."""
    pytest.importorskip("lm_eval")
    from h2q_lib.evaluation.lm_eval_adapter import H2QLM
    from h2q_lib.training.checkpoint import load_model

    _, tokenizer, _ = load_model(small_checkpoint, "cpu")
    lm = H2QLM(checkpoint=str(char_export), device="cpu")
    text = "some text <unk> naïve\n"
    assert lm.tok_encode(text) == tokenizer.encode(text).tolist()
    assert lm.prefix_token_id == tokenizer.bos_id


# --- row 5: a signal to h2q pipeline reaches the notebook's trainer ---------------------------


def test_a_signal_to_the_pipeline_is_forwarded_to_its_kernel_as_an_interrupt(tmp_path):
    """row 5: the kernel (a child in its own session) gets SIGINT; the pipeline lives on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from h2q_lib.book.pipeline import forward_interrupts

    flag = tmp_path / "got"
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time, pathlib\n"
         f"signal.signal(signal.SIGINT, lambda *a: (pathlib.Path({str(flag)!r})"
         ".write_text('SIGINT'), sys.exit(0)))\n"
         f"pathlib.Path({str(flag) + '.ready'!r}).write_text('')\n"
         "time.sleep(60)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not Path(str(flag) + ".ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with forward_interrupts() as stops:
            os.kill(os.getpid(), signal.SIGTERM)
            child.wait(timeout=15)
        assert stops["signum"] == signal.SIGTERM and flag.read_text() == "SIGINT"
    finally:
        if child.poll() is None:
            child.kill()


NOTEBOOK_TRAINS = """
from h2q_lib.training.profiles import RuntimeConfig, get_profile
from h2q_lib.training.trainer import train
cfg = get_profile("smoke", n_layer=1, n_head=2, n_embd=32, n_ff=64, block_size=32,
                  batch_size=4, grad_accum=1, steps=100000, warmup=1, eval_every=100000,
                  eval_batches=1, log_every=1, ckpt_every=100000, sample_tokens=0)
train(cfg, {run!r}, RuntimeConfig(data_dir={data!r}, quiet=True, device="cpu",
                                  precision="fp32"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_to_h2q_pipeline_saves_the_trainers_step_and_ends_in_one_line(
        tmp_path, data_dir, sig, code):
    """row 5: the trainer in notebook 02's kernel saves its step; one line, exit 128 + n."""
    import signal
    import subprocess
    import sys
    import time

    import nbformat

    root, run = tmp_path / "root", tmp_path / "run"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_TRAINS.format(run=str(run),
                                                                 data=str(data_dir)))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "notebooks" / "01_data_prep.ipynb")
    script = ("import sys; from pathlib import Path; from h2q_lib.book import pipeline; "
              "from h2q_lib.cli import main; pipeline.ROOT = Path(sys.argv[1]); "
              "sys.exit(main(['pipeline', '--profile', 'smoke', '--runs-dir', sys.argv[2], "
              "'--out-dir', sys.argv[3], '--no-book']))")
    proc = subprocess.Popen([sys.executable, "-c", script, str(root), str(tmp_path / "runs"),
                             str(tmp_path / "out")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(runs.read_jsonl(run / "log.jsonl")) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    # the kernel's own start-up warning ("[IPKernelApp] WARNING | ...") is jupyter's
    lines = [line for line in err.strip().splitlines() if not line.startswith("[IPKernelApp]")]
    assert len(lines) == 1 and lines[0].startswith(f"h2q: error: interrupted by {sig}"), err
    saved = sorted((run / "checkpoints").glob("step_*.pt"))
    last = runs.read_jsonl(run / "log.jsonl")[-1]["step"]
    assert [p.name for p in saved] == [f"step_{last:06d}.pt"]


# --- rows 7, 22: the model card shows sound fp32 entries only ---------------------------------


def _entry(sha: str, precision: str, nll_sum: float) -> dict:
    from h2q_lib.evaluation.metrics import summarize

    counts = {"tokens": 100, "characters": 100, "utf8_bytes": 100, "whitespace_words": 20,
              "wikitext_words": 20, "documents": 1}
    metrics = runs.strict(summarize(nll_sum, *list(counts.values())[:-1]))
    return {"key": {"weights_sha256": sha, "precision": precision, "max_documents": None},
            "result": {"nll_sum": nll_sum, **counts, "metrics": metrics}}


def test_the_model_card_shows_checked_fp32_scores_and_says_so(small_checkpoint, tmp_path):
    """row 22: bf16 entries are not shown as lm-eval's; row 7: an edited, mistyped or
    missing metric is left out, and an overflowed (null) perplexity is shown as ∞."""
    from h2q_lib.evaluation.checkpoint_identity import checkpoint_identity
    from h2q_lib.export.hf_export import export_hf
    from h2q_lib.export.safe_folder import EXPORT_MARKER

    sha = checkpoint_identity(small_checkpoint)["weights_sha256"]
    edited = _entry(sha, "fp32", 200.0)
    edited["result"]["metrics"]["bits_per_byte"] = 0.1
    typed = _entry(sha, "fp32", 200.0)
    typed["result"]["metrics"]["word_perplexity"] = "12"
    missing = _entry(sha, "fp32", 200.0)
    del missing["result"]["metrics"]["token_perplexity"]
    stored = {"lm-eval": {"validation": _entry(sha, "fp32", 1e5),  # word ppl overflows
                          "test": _entry(sha, "bf16", 200.0)},
              "report": {"validation": edited, "test": typed, "extra": missing}}
    (tmp_path / "evaluation.json").write_text(runs.dumps(stored))
    out = export_hf(small_checkpoint, tmp_path / "out")
    card = (out / "README.md").read_text()
    rows = [line for line in card.splitlines() if line.startswith("| lm-eval")
            or line.startswith("| report")]
    assert len(rows) == 1 and rows[0].startswith("| lm-eval | validation") and "∞" in rows[0]
    assert "in fp32" in card and (out / EXPORT_MARKER).is_file()


# --- row 24: empty input ----------------------------------------------------------------------


def test_empty_input_is_said_as_such_and_an_empty_page_scores_0():
    """row 24: ``evaluate_documents([])`` said "n_tokens=0 is not allowed"."""
    import torch

    from h2q_lib.data.tokenizers import CharTokenizer
    from h2q_lib.evaluation.documents import evaluate_documents
    from h2q_lib.model.gpt import GPT, GPTConfig

    tokenizer = CharTokenizer.train(["some text\n"], vocab_size=12)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1,
                          n_head=2, n_embd=8, n_ff=16)).eval()
    for docs, needle in (([], "the input was empty"), (["", ""], "every page given was empty")):
        with pytest.raises(ConfigError, match=needle) as e:
            evaluate_documents(model, tokenizer, docs, context=16, device="cpu")
        one_line(e)
    alone = evaluate_documents(model, tokenizer, ["some text"], context=16, device="cpu")
    both = evaluate_documents(model, tokenizer, ["some text", ""], context=16, device="cpu")
    assert both.nll_sum == pytest.approx(alone.nll_sum) and both.tokens == alone.tokens


# --- row 20: a committed folder's stored numbers say their precision ---------------------------


def test_evaluating_a_committed_folder_says_which_precision_its_numbers_are_from(capsys):
    """row 20: "fp32: asked for" was followed by the stored bf16 entry as if so scored."""
    from h2q_lib.evaluation.evaluate_command import evaluate_command

    stored = json.loads((ROOT / "runs" / "prefix" / "evaluation.json").read_text())
    kept = stored["lm-eval"]["validation"]["key"]["precision"]
    evaluate_command(str(ROOT / "runs" / "prefix"), device="cpu", precision="fp32")
    out = capsys.readouterr().out
    assert f"shown: the stored results, scored in {kept}" in out

# --- row 11: a run folder that cannot be written ---------------------------------------------
# It (or its checkpoints/ or token_cache/) ended in a PermissionError/OSError traceback, and an
# extended run trained its steps before failing to write their checkpoint (the steps were
# lost). Root writes whatever a file's mode says, so the real-folder tests make the folder
# read-only with a read-only bind mount (root only; skipped elsewhere); a stand-in for the
# system call raises the same refusal for every user.

LONGER = dataclasses.replace(TINY, steps=8)  # the finished tiny run, extended by two steps
FOLDERS = [".", "checkpoints", "token_cache"]


@pytest.fixture
def read_only():
    """Make a folder read-only for root too (a read-only bind mount of itself)."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        if shutil.which("mount") is None or subprocess.run(
                ["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
            pytest.skip("a folder cannot be bind-mounted here (needs root)")
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_read_only_folder_is_one_line_before_any_step(finished, runtime, read_only, folder):
    """row 11, on a real read-only folder: the extended run trained steps 5 and 6, then the
    checkpoint write raised ``OSError`` (the steps were lost); a fresh cache write did too."""
    before = snapshot(finished)
    read_only(finished / folder)
    with pytest.raises(RunFolderError, match="cannot be written") as e:
        train(LONGER, finished, runtime, extend=True)
    message = str(e.value)
    assert "\n" not in message and "nothing was trained" in message
    assert ("it refuses" in message) if folder == "." else (f"its {folder}/ folder" in message)
    assert snapshot(finished) == before


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_that_refuses_files_is_one_line_for_every_user(finished, runtime, monkeypatch,
                                                                folder):
    """row 11, with the refusal a non-root user meets (``EACCES``), raised for that folder."""
    refused = (finished / folder).resolve()
    real = tempfile.TemporaryFile

    def temporary_file(*args, **kwargs):
        if Path(kwargs.get("dir", ".")).resolve() == refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(refused))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    before = snapshot(finished)
    with pytest.raises(RunFolderError, match=r"cannot be written: .*\(Permission denied\)"):
        train(LONGER, finished, runtime, extend=True)
    assert snapshot(finished) == before


def test_the_command_names_a_file_the_system_refuses_in_one_line(monkeypatch, capsys, tmp_path):
    """row 11, the last line of defence: a refusal after the checks is one line, rc 2."""
    def refuse(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "results.json"))

    monkeypatch.setattr("h2q_lib.bench.benchmark.run_benchmark", refuse)
    assert cli.main(["bench", "--out", str(tmp_path / "results.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.json: Permission denied" in err


def test_other_os_errors_are_not_disguised(monkeypatch):
    """Only the system's refusals are shortened; anything else keeps its traceback."""
    def broken(**kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("h2q_lib.bench.benchmark.run_benchmark", broken)
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["bench"])
