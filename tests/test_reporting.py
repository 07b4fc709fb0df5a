"""Book tables, the papermill pipeline's bookkeeping, the benchmark's pieces, the experiment."""

from __future__ import annotations

import math

import nbformat
import pytest
import torch

from h2q_lib import bench, pipeline, reporting
from h2q_lib.data import load_split, report_text
from h2q_lib.experiment import experiment_configs
from h2q_lib.report import REPORT
from h2q_lib.tokenizers import CharTokenizer


def test_report_curve_is_interpolated_between_its_points():
    per_step = REPORT.tokens_per_step()
    assert reporting.report_loss_at_tokens(100 * per_step) == pytest.approx(2.7180)
    assert reporting.report_loss_at_tokens(500 * per_step) == pytest.approx(1.5178)
    mid = reporting.report_loss_at_tokens(math.sqrt(100 * 500) * per_step)
    assert mid == pytest.approx((2.7180 + 1.5178) / 2)
    assert reporting.report_loss_at_tokens(10) is None
    assert reporting.report_loss_at_tokens(10**12) is None


def test_progress_table_pairs_train_loss_with_validation_perplexity():
    log = [{"step": 5, "train_loss": 3.0, "val_loss": None, "perplexity": None,
            "tokens_seen": 50, "tokens_per_s": 1.0},
           {"step": 10, "train_loss": 2.0, "val_loss": 2.5, "perplexity": math.exp(2.5),
            "tokens_seen": 100, "tokens_per_s": 2.0}]
    table = reporting.progress_table(log, total_steps=20)
    assert list(table.index) == [10]
    assert table.loc[10, "loss"] == 2.0 and table.loc[10, "progress %"] == 50.0
    assert table.loc[10, "perplexity"] == pytest.approx(math.exp(2.5))
    rep = reporting.report_progress_table()
    assert rep.loc[6000, "tokens"] == 6000 * 16_384 and rep.loc[6000, "perplexity"] == 2.95


def test_reconstruction_and_conversion_tables(data_dir):
    valid = load_split("validation", data_dir=data_dir)
    test = load_split("test", data_dir=data_dir)
    tok = CharTokenizer.train([report_text(valid.lines)])
    recon = reporting.reconstruction_table(valid, tok)
    assert recon["match"].tolist() == [True, True, False, True]
    conv = reporting.convert_report_claim(valid, test)
    assert conv.iloc[0]["tokens"] == 1_120_496
    assert conv.iloc[0]["bits per character"] == pytest.approx(1.0828 * 1_120_496
                                                               / 1_120_494 / math.log(2))
    assert conv.iloc[1]["words"] == 217_646
    assert conv.iloc[1]["word perplexity"] == pytest.approx(math.exp(1.0828 * 1_120_496
                                                                     / 217_646))
    assert conv.iloc[0]["word perplexity"] > conv.iloc[1]["word perplexity"] > 37.5
    gpt2 = reporting.gpt2_published_on_axes(test)
    small = gpt2[gpt2["model"] == "GPT-2 117M"].iloc[0]
    raw_bytes = len(test.text().encode("utf-8"))
    assert small["bits per byte (converted)"] == pytest.approx(
        math.log(37.5) * 245_569 / math.log(2) / raw_bytes)


def test_checkpoint_files_are_listed_with_decimal_megabytes(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_000001.pt").write_bytes(b"x" * 2_000_000)
    (tmp_path / "final_model.safetensors").write_bytes(b"x" * 500_000)
    files = reporting.checkpoint_files(tmp_path)
    assert files.to_dict()["MB"] == {"checkpoints/step_000001.pt": 2.0,
                                     "final_model.safetensors": 0.5}


def test_provenance_records_parameters_versions_device_and_revision():
    table = reporting.provenance({"profile": "smoke"})
    assert table.loc["parameter: profile", "value"] == "'smoke'"
    assert table.loc["torch", "value"] == torch.__version__
    assert "cpu" in table.loc["devices available", "value"]
    assert table.loc["git revision", "value"] != ""


def test_pipeline_gives_notebooks_relative_paths_only(tmp_path):
    out, runs = tmp_path / "book" / "notebooks", tmp_path / "runs"
    params = pipeline.notebook_parameters("cpu", out, runs, str(tmp_path / "data"), False)
    assert params["run_dir"] == "../../runs/cpu"
    assert params["experiment_dir"] == "../../runs/cpu-tokenizers"
    assert params["data_dir"] == "../../data"
    assert not any(str(v).startswith("/") for v in params.values())
    with pytest.raises(Exception, match="profile='nope'"):
        pipeline.run_pipeline("nope", out_dir=str(out), runs_dir=str(runs), build_book=False)


def test_injected_parameters_are_hidden_from_the_html(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("y = 2")])
    nb.metadata["papermill"] = {"input_path": str(pipeline.ROOT / "notebooks" / "a.ipynb"),
                                "output_path": "book/notebooks/a.ipynb"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    pipeline.hide_injected_parameters(path)
    done = nbformat.read(path, as_version=4)
    assert done.metadata["papermill"] == {"input_path": "notebooks/a.ipynb",
                                          "output_path": "book/notebooks/a.ipynb"}
    cells = done.cells
    assert cells[0].metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert "tags" not in cells[1].metadata or "remove-cell" not in cells[1].metadata["tags"]


def test_source_notebooks_are_thin_and_parameterised():
    for name in pipeline.NOTEBOOKS:
        nb = nbformat.read(pipeline.ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "remove-cell" in params[0].metadata["tags"]
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "from h2q_lib" in src and "def train(" not in src


def test_benchmark_pieces_measure_something():
    assert bench.matmul_rate("cpu", torch.float32, n=128, repeats=1) > 1e6
    rates = bench.tokenization_rates("Hello world.\nA second line.\n" * 2000)
    assert rates["char_MB_per_s"] > 0 and rates["gpt2_MB_per_s"] > 0


def test_experiment_matches_training_bytes_across_tokenizers(data_dir):
    configs = experiment_configs("smoke", data_dir=str(data_dir))
    assert set(configs) == {"char", "word50k", "gpt2"}
    bodies = {(c["config"].n_layer, c["config"].n_embd) for c in configs.values()}
    assert len(bodies) == 1
    for entry in configs.values():
        cfg = entry["config"]
        bytes_per_seq = cfg.block_size / entry["tokens_per_byte"]
        assert bytes_per_seq == pytest.approx(256, rel=0.03)
    assert configs["char"]["config"].block_size > 4 * configs["gpt2"]["config"].block_size


def test_git_revision_marks_uncommitted_library_files():
    revision = reporting.git_revision()
    if revision == "unknown":
        pytest.skip("not a git checkout")
    base = revision.removesuffix("+dirty")
    probe = pipeline.ROOT / "h2q_lib" / "_untracked_probe.py"
    probe.write_text("")
    try:
        assert reporting.git_revision() == base + "+dirty"
    finally:
        probe.unlink()
