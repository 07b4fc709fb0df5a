"""The book's tables, readings and figures: run-folder tables, comparisons,
the audit's rerun check and the experiment's pieces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from h2q_lib.analysis.audit import audit_counts, audit_table, run_audit
from h2q_lib.analysis.audit_rerun import check_early_losses_reproduced
from h2q_lib.analysis.audit_row import CONSISTENT, INCONSISTENT, NOT_CHECKABLE, VERDICTS
from h2q_lib.analysis.tokenizer_experiment import experiment_recipes, experiment_values
from h2q_lib.book import (
    data_tables,
    provenance_tables,
    recipe_tables,
    tables,
    training_tables,
)
from h2q_lib.book.wording import evaluate as evaluate_wording
from h2q_lib.book.wording import train as train_wording
from h2q_lib.book.wording.tokenizer_caveats import audit_markdown, experiment_reading
from h2q_lib.claims.completion_report import REPORT
from h2q_lib.data.tokenizers import CharTokenizer
from h2q_lib.data.wikitext import load_split, report_text
from h2q_lib.evaluation import gpt2_comparison as comparison
from h2q_lib.training.profiles import PROFILES, get_profile

PER_STEP = REPORT.tokens_per_step()


def fake_log(steps, loss_at, per_step=PER_STEP, every=50):
    """A log.jsonl of a run at ``per_step`` tokens a step, validated every ``every`` steps."""
    return [{"step": s, "train_loss": loss_at(s) + 0.05, "train_loss_avg": loss_at(s) + 0.06,
             "val_loss": loss_at(s) if s % every == 0 else None,
             "perplexity": math.exp(loss_at(s)) if s % every == 0 else None,
             "tokens_seen": s * per_step, "tokens_per_s": 1000.0}
            for s in steps]


def power(a=30.0, alpha=0.2):
    return lambda s: a * (s * PER_STEP) ** (-alpha)


# --- run tables -------------------------------------------------------------------------------


def test_progress_table_pairs_train_loss_with_validation_perplexity():
    log = [{"step": 5, "train_loss": 3.0, "val_loss": None, "perplexity": None,
            "tokens_seen": 50, "tokens_per_s": 1.0},
           {"step": 10, "train_loss": 2.0, "val_loss": 2.5, "perplexity": math.exp(2.5),
            "tokens_seen": 100, "tokens_per_s": 2.0}]
    table = training_tables.progress_table(log, schedule_steps=20)
    assert list(table.index) == [10]
    assert table.loc[10, "loss"] == 2.0 and table.loc[10, "progress %"] == 50.0
    rep = training_tables.report_progress_table()
    assert rep.loc[6000, "tokens"] == 6000 * PER_STEP and rep.loc[6000, "perplexity"] == 2.95


def test_beside_report_sets_each_row_beside_what_it_is_ours_minus_report():
    log = fake_log(range(10, 510, 10), power())
    beside = training_tables.beside_report(log)
    assert list(beside.index) == [100, 500]
    # row 100 has no Perplexity: a training-log line, set beside training losses only
    assert beside.loc[100, "kind of row"] == "training log"
    assert pd.isna(beside.loc[100, "our validation loss"])
    assert beside.loc[100, "our training loss: that step"] == pytest.approx(power()(100) + 0.05)
    assert beside.loc[100, "our training loss: last 10 steps"] == pytest.approx(
        power()(100) + 0.06)
    assert beside.loc[500, "kind of row"] == "evaluation"
    assert beside.loc[500, "ours − report"] == pytest.approx(power()(500) - 1.5178)
    reading = train_wording.beside_reading(beside)
    assert "step 500 (an evaluation row): our validation loss" in reading
    assert "step 100 (a training-log row, no Perplexity)" in reading
    values = training_tables.beside_values(beside)
    assert values["beside_last_step"] == 500 and values["at500_report"] == 1.5178
    assert "at100_report" not in values
    assert values["at500_diff"] == pytest.approx(power()(500) - 1.5178)
    # a run at other tokens per step is not set beside the report's steps
    other = fake_log(range(10, 510, 10), power(), per_step=1000)
    other_beside = training_tables.beside_report(other)
    assert other_beside.empty
    assert training_tables.beside_values(other_beside) == {"beside_last_step": 0}
    assert "not at the report's tokens per step" in train_wording.beside_reading(other_beside)


def test_a_table_shows_markers_instead_of_reading_them_as_tags():
    html = tables.table(pd.DataFrame({"text": ["<bos>…<eos>"]}))._repr_html_()
    assert "&lt;bos&gt;…&lt;eos&gt;" in html and "<bos>" not in html


def test_checkpoint_files_are_listed_with_decimal_megabytes(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_000001.pt").write_bytes(b"x" * 2_000_000)
    (tmp_path / "final_model.safetensors").write_bytes(b"x" * 500_000)
    files = training_tables.checkpoint_files(tmp_path)
    assert files.to_dict()["MB"] == {"checkpoints/step_000001.pt": 2.0,
                                     "final_model.safetensors": 0.5}
    assert training_tables.checkpoint_sizes(files) == {"step_checkpoint_MB": 2.0,
                                                       "final_weights_MB": 0.5}


def test_samples_beside_report_take_the_last_step_only():
    prompts = ("The meaning of life is", "Artificial intelligence will")
    samples = [{"step": s, "prompt": p, "text": f"{p} at {s}"} for s in (100, 200) for p in prompts]
    table = training_tables.samples_beside_report(samples)
    sources = set(table.index.get_level_values("source"))
    assert "this run, step 200" in sources and "this run, step 100" not in sources
    assert "report, step 1000" in sources
    assert len(table) == len(REPORT.generated_samples) + 2


def test_config_table_reads_the_run_folder_not_a_profile():
    cfg = get_profile("prefix", block_size=256)
    run = {"config": cfg.to_dict(), "summary": {"parameters": 123, "vocab_size": 127}}
    table = recipe_tables.config_table(run)
    assert table.loc["sequence length", "this run"] == 256
    assert table.loc["sequence length", "report"] == REPORT.seq_len
    assert table.loc["schedule length (steps)", "this run"] == REPORT.steps
    assert table.loc["steps trained", "this run"] == 500


def test_sessions_and_summary_tables():
    summary = {"steps": 8, "sessions": [
        {"from_step": 0, "to_step": 4, "device": "cpu", "precision": "fp32", "reason": "r",
         "git_revision": "abc"},
        {"from_step": 4, "to_step": 8, "device": "cpu", "precision": "bf16", "reason": "r",
         "git_revision": "def"}]}
    assert training_tables.sessions_table(summary)["git_revision"].tolist() == ["abc", "def"]
    assert training_tables.training_summary(summary)["steps"] == 8


def test_training_texts_table_counts_epochs_of_each_text(data_dir):
    cfg = get_profile("prefix")
    table = data_tables.training_texts_table(cfg, str(data_dir))
    used = table[table["used by this run"]]
    assert len(used) == 1 and bool(used["complete"].iloc[0])
    row = used.iloc[0]
    assert row["epochs in this run"] == pytest.approx(cfg.steps * cfg.tokens_per_step
                                                      / row["char tokens"])
    assert row["epochs in this run"] < 1 < table["epochs in this run"].max()
    assert 0.02 < row["<unk> share of words"] < 0.03  # WikiText-2's 2.6% (SOURCES.md)


def test_provenance_records_parameters_versions_machine_precision_and_revision():
    table = provenance_tables.provenance({"profile": "smoke"})
    assert table.loc["parameter: profile", "value"] == "'smoke'"
    assert table.loc["CPU capability", "value"].startswith(
        __import__("torch").backends.cpu.get_cpu_capability())
    assert table.loc["precision rule on cpu", "value"].split(":")[0] in ("bf16", "fp32")
    assert len(table.loc["library fingerprint", "value"]) == 16


# --- comparisons ------------------------------------------------------------------------------


def test_reconstruction_and_conversion_tables(data_dir):
    valid, test = comparison.report_splits(str(data_dir))
    tok = CharTokenizer.train([report_text(valid.lines)])
    recon = data_tables.reconstruction_table(valid, tok)
    assert recon["match"].tolist() == [True, True, False, True]
    conv = comparison.convert_report_claim(valid, test)
    assert conv.iloc[0]["tokens"] == REPORT.validation_tokens
    assert conv.iloc[0]["bits per character"] == pytest.approx(
        1.0828 * 1_120_496 / 1_120_494 / math.log(2))
    assert conv.iloc[1]["words"] == 217_646
    assert conv.iloc[0]["word perplexity"] > conv.iloc[1]["word perplexity"] > 37.5
    gpt2 = comparison.gpt2_published_on_axes(test)
    small = gpt2[gpt2["model"] == "GPT-2 117M"].iloc[0]
    raw_bytes = len(test.text().encode("utf-8"))
    assert small["bits per byte (converted)"] == pytest.approx(
        math.log(37.5) * 245_569 / math.log(2) / raw_bytes)
    steps = comparison.conversion_steps(valid)
    assert steps["value"].iloc[5] == pytest.approx(conv.iloc[1]["word perplexity"])
    assert steps["value"].iloc[6] == 37.5
    assert "worse, not better" in evaluate_wording.conversion_reading(valid)


def test_evaluation_table_and_the_one_axis_table():
    result = {"documents": 62, "tokens": 1000, "metrics": {
        "bits_per_character": 2.0, "bits_per_byte": 1.9, "word_perplexity": 500.0,
        "token_perplexity": 4.0}}
    evaluation = {"lm-eval": {"test": result}, "report": {"test": result}}
    ours = comparison.evaluation_table(evaluation)
    assert sorted(ours["protocol"]) == ["lm-eval", "report"]
    claim = pd.DataFrame([{"split": "test", "bits per byte": 1.6, "word perplexity": 300.0,
                           "word count used": "w"}])
    published = pd.DataFrame([{"model": "GPT-2 117M", "word perplexity (published)": 37.5,
                               "bits per byte (converted)": 1.0}])
    measured = pd.DataFrame([{"model": "gpt2 (measured)", "split": "test",
                              "status": "weights unavailable", "bits per byte": None,
                              "word perplexity": None}])
    table = comparison.models_on_one_axis(claim, ours, published, measured)
    assert len(table) == 4  # the unavailable GPT-2 adds no row
    text = evaluate_wording.evaluation_reading(claim, ours, published)
    assert "1.600" in text and "1.60 times" in text and "behind" in text
    assert "the same loss is 300, 8.0 times GPT-2 small" in text


# --- audit: the rerun -------------------------------------------------------------------------


def test_rerun_row_compares_the_reports_early_losses_with_the_run():
    from h2q_lib.analysis.curves import Run
    cfg = get_profile("prefix").to_dict()
    close = fake_log(range(10, 510, 10), lambda s: {100: 2.70, 500: 1.50}.get(s, 2.0))
    far = fake_log(range(10, 510, 10), lambda s: {100: 2.70, 500: 1.80}.get(s, 2.0))
    row = check_early_losses_reproduced(REPORT, [Run("stated", cfg, close, None)])
    assert row.verdict == CONSISTENT and "step 500" in row.evidence
    # row 100 is a training-log line: never set beside a validation loss
    assert "step 100" not in row.evidence
    assert check_early_losses_reproduced(
        REPORT, [Run("stated", cfg, far, None)]).verdict == INCONSISTENT
    # one verdict per reading: a second reading that reproduces the rows makes it consistent,
    # and the row names it
    micro = {**cfg, "reading": "micro-batch"}
    both = check_early_losses_reproduced(
        REPORT, [Run("stated", cfg, far, None), Run("micro-batch", micro, close, None)])
    assert both.verdict == CONSISTENT and "under the micro-batch reading" in both.detail
    assert "stated:" in both.evidence and "micro-batch:" in both.evidence
    smoke = get_profile("smoke").to_dict()
    assert check_early_losses_reproduced(
        REPORT, [Run("smoke", smoke, close, None)]).verdict == NOT_CHECKABLE
    assert check_early_losses_reproduced(REPORT).verdict == NOT_CHECKABLE
    counts = audit_counts(audit_table(
        run_audit(REPORT, None, [Run("stated", cfg, far, None)])))
    assert counts["audit_total"] == sum(counts[f"audit_{v.replace(' ', '_')}"]
                                        for v in VERDICTS)
    assert counts["audit_rerun_verdict"] == INCONSISTENT


# --- the experiment ---------------------------------------------------------------------------


def test_experiment_matches_training_bytes_across_tokenizers(data_dir, tmp_path):
    spec = PROFILES["smoke"].experiment
    recipes = experiment_recipes(spec, str(data_dir), tmp_path / "cache")
    assert set(recipes) == {"char", "word50k", "gpt2"}
    bodies = {(c["config"].n_layer, c["config"].n_embd) for c in recipes.values()}
    assert len(bodies) == 1
    for entry in recipes.values():
        bytes_per_seq = entry["config"].block_size / entry["tokens_per_byte"]
        assert bytes_per_seq == pytest.approx(spec.bytes_per_sequence, rel=0.03)
    assert recipes["char"]["config"].block_size > 4 * recipes["gpt2"]["config"].block_size
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 3  # each text encoded once


def test_experiment_reading_is_worded_from_its_table():
    table = pd.DataFrame({"token perplexity": [11.0, 500.0, 700.0],
                          "bits per byte": [3.5, 1.7, 2.0], "unk share": [0.0, 0.07, 0.0]},
                         index=pd.Index(["char", "word50k", "gpt2"], name="tokenizer"))
    text = experiment_reading(table)
    # word50k's <unk> share makes its bits per byte incomparable: it is not ranked
    assert "`gpt2` has the lowest bits per byte and `char` the highest" in text
    assert "yet `gpt2` needs fewer bits per byte" in text and "7.0%" in text
    assert "not comparable and it is not ranked" in text
    flipped = table.assign(**{"bits per byte": [1.5, 1.7, 2.0]})
    assert "also the lowest bits per byte" in experiment_reading(flipped)
    assert experiment_values(table)["exp_best"] == "gpt2"


def test_a_finished_experiment_is_read_back_not_retrained(tmp_path, monkeypatch):
    from h2q_lib.analysis import tokenizer_experiment as experiment
    from h2q_lib.core import run_folder as runs

    spec = PROFILES["smoke"].experiment
    rows = [{"tokenizer": n, "vocab": 10, "token perplexity": 5.0, "bits per byte": 2.0,
             "unk share": 0.0} for n in experiment.EXPERIMENT_TOKENIZERS]
    runs.write_json(tmp_path / experiment.RESULTS, {"experiment": experiment.asdict(spec),
                                                    "split": "test", "rows": rows})
    for n in experiment.EXPERIMENT_TOKENIZERS:
        (tmp_path / n).mkdir()
        runs.write_json(tmp_path / n / "summary.json", {"steps": spec.steps})
    monkeypatch.setattr(experiment, "train", lambda *a, **k: pytest.fail("retrained"))
    table = experiment.run_tokenizer_experiment(spec, tmp_path)
    assert list(table.index) == list(experiment.EXPERIMENT_TOKENIZERS)
    # other settings, or an unfinished model, are not read back
    other = experiment.ExperimentConfig(**{**experiment.asdict(spec), "steps": spec.steps + 1})
    assert experiment.stored_results(tmp_path, other, experiment.EXPERIMENT_TOKENIZERS,
                                     "test") is None
    runs.write_json(tmp_path / "gpt2" / "summary.json", {"steps": 1})
    assert experiment.stored_results(tmp_path, spec, experiment.EXPERIMENT_TOKENIZERS,
                                     "test") is None


def test_report_splits_are_the_complete_raw_text(data_dir):
    valid, test = comparison.report_splits(str(data_dir))
    assert not valid.is_slice and not test.is_slice
    assert (valid.config, test.config) == ("wikitext-103-raw-v1",) * 2
    assert load_split("validation", "wikitext-2-raw-v1", str(data_dir)).lines == valid.lines


# --- tables for readers ----------------------------------------------------------------------


def test_table_formats_cells_for_readers():
    df = pd.DataFrame({"count": [10780437, 2], "val loss": [1.234567, np.nan],
                       "word perplexity": [477813.2159, 2.9529], "unk share": [0.0718, None],
                       "progress %": [2.0, 99.6], "complete": [True, False],
                       "parameters": [25547264.0, 127.0]})
    text = repr(tables.table(df))
    assert "10,780,437" in text and "1.2346" in text and "477.8k" in text
    assert "2.953" in text and "7.2%" in text and "2.0%" in text and "yes" in text
    assert "25,547,264" in text and "127.0" not in text
    for bad in ("NaN", "None", "nan", "dtype", "True"):
        assert bad not in text
    assert text.count("—") == 2
    html = tables.table(df)._repr_html_()
    assert "<th" in html and "level0 row0" not in html  # no index column
    # the same labels give the same ids whatever the numbers (nbval compares the HTML)
    assert 'id="T_h2q' in html
    assert html.split('id="')[1][:12] == tables.table(df * 1.01)._repr_html_().split(
        'id="')[1][:12]


def test_a_measured_value_never_prints_as_a_count():
    # nbval compares integers exactly and other numbers within a tolerance; a perplexity in
    # the millions printed without a decimal would be held to the digit on every CPU
    from nbval_tolerance import numbers_agree, texts_agree
    assert tables.significant(5667420.37) == "5.667M"  # issue #34: 4 digits, not 8
    assert tables.significant(483465.9) == "483.5k" and tables.significant(25795.04) == "25.80k"
    assert tables.significant(1213273.1) == "1.213M" and tables.significant(12345.6) == "12.35k"
    assert tables.significant(1855.2) == "1,855.2"
    assert tables.significant(15.413) == "15.41" and tables.significant(477813.0) == "477,813"
    assert texts_agree(tables.significant(5667420.4), tables.significant(5667421.2))
    assert not texts_agree(tables.significant(5667420.4), tables.significant(5767420.4))
    assert numbers_agree(tables.significant(1855.2), tables.significant(1855.3))


def test_table_of_a_series_formats_by_row_and_colours_verdicts():
    text = repr(tables.table(pd.Series({"elapsed_s": 4862.95, "best_val_loss": 2.29461},
                                       name="this run")))
    assert "4,862.9" in text and "2.2946" in text and "dtype" not in text
    audit_like = pd.DataFrame({"claim": ["a"], "verdict": ["inconsistent"]})
    assert "background-color: #f8d7da" in tables.table(audit_like,
                                                       verdict="verdict")._repr_html_()


def test_audit_markdown_lists_every_claim_with_its_full_detail():
    rows = audit_table(run_audit(REPORT))
    text = audit_markdown(rows)
    assert text.count("\n1. ") == 0 and text.startswith("1. ")
    for row in rows.itertuples():
        assert row.detail in text and row.verdict in text


def test_unstated_settings_are_read_from_the_recipe():
    cfg = get_profile("prefix")
    table = recipe_tables.unstated_settings(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    assumed = dict(zip(table["setting"], table["assumed here"], strict=True))
    assert assumed["seed"] == str(cfg.seed)
    assert assumed["AdamW betas"].startswith("(0.9, 0.95)")
    assert "not stated" in set(table["the report"])


def test_a_table_without_rows_says_why_instead_of_showing_a_bare_header():
    shown = tables.table(pd.DataFrame(columns=["file", "MB"]), empty="No <files> kept.")
    assert shown._repr_html_() == '<p class="h2q-empty"><em>No &lt;files&gt; kept.</em></p>'
    assert repr(shown) == "No <files> kept."
    assert "<table" in tables.table(pd.DataFrame({"a": [1]}))._repr_html_()


def test_the_compact_beside_table_gives_the_training_rows_range():
    log = fake_log(range(10, 510, 10), power())
    compact = training_tables.beside_compact(training_tables.beside_report(log)).set_index("step")
    assert list(compact.columns) == ["row", "report", "ours", "ours − report"]
    assert compact.loc[500, "ours"].endswith("(validation)")
    low, high = power()(100) + 0.05 - 2.718, power()(100) + 0.06 - 2.718
    assert compact.loc[100, "ours − report"] == f"{low:+.3f} to {high:+.3f}"
