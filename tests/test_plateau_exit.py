"""Where a run leaves the plateau, and which committed runs a schedule clock may pool."""

from __future__ import annotations

from h2q_lib.analysis.curves import Run
from h2q_lib.analysis.plateau_exit import EXIT_LOSS, exit_runs, exit_table, plateau_exit
from h2q_lib.analysis.preregistration import clock_runs
from h2q_lib.book.wording.runs_tried import exit_reading
from h2q_lib.core.run_folder import write_json
from h2q_lib.training.profiles import get_profile


def run(name: str, losses: dict[int, float], **recipe) -> Run:
    config = get_profile("prefix", steps=max(losses), **recipe).to_dict()
    log = [{"step": s, "loss": 2.5} for s in range(1, max(losses) + 1)]
    for record in log:
        if record["step"] in losses:
            record["val_loss"] = losses[record["step"]]
    return Run(name, config, log, None)


def test_the_exit_is_bracketed_by_the_evaluations_around_the_first_loss_below():
    left = plateau_exit(run("a", {50: 2.6, 100: 2.45, 150: 2.41, 200: 2.39, 250: 2.2}))
    assert (left.after, left.by, left.words) == (150, 200, "steps 150–200")
    # exactly at the threshold is still on the plateau
    assert plateau_exit(run("b", {25: 2.5, 50: EXIT_LOSS, 75: 2.3})).after == 50
    stayed = plateau_exit(run("c", {100: 2.6, 200: 2.45}))
    assert (stayed.by, stayed.words) == (None, "not by step 200")
    early = plateau_exit(run("d", {100: 2.3, 200: 2.1}))
    assert (early.after, early.words) == (None, "by step 100")


def test_the_exit_table_compares_each_run_with_the_stated_run_at_its_last_evaluation():
    stated = run("stated", {100: 2.6, 200: 2.5, 300: 2.45, 400: 2.3})
    longer = run("stated-long", {100: 2.6, 200: 2.5, 300: 2.45, 400: 2.3, 500: 2.1})
    other = run("N4", {100: 3.3, 200: 3.2, 300: 3.1}, init="pytorch")
    compared, baseline = exit_runs([stated, longer], [other])
    assert [r.name for r in compared] == ["stated-long", "N4"] and baseline is longer
    table = exit_table(compared, baseline)
    n4 = table.set_index("run").loc["N4"]
    assert n4["evaluated every"] == 100 and n4["last evaluation"] == "step 300"
    assert (n4["validation loss"], n4["stated recipe there"]) == ("3.100", "2.450")
    assert n4["run − stated"] == "+0.650"
    assert n4[f"left the plateau (validation < {EXIT_LOSS:.2f})"] == "not by step 300"
    own = table.set_index("run").loc["stated-long"]
    assert (own["stated recipe there"], own["run − stated"]) == ("—", "—")
    text = exit_reading(compared)
    assert "for stated-long at steps 300–400" in text and "for N4 not by step 300" in text
    assert exit_reading([]).startswith("No run")


def test_the_clock_pools_only_runs_whose_optimizer_settings_match(tmp_path):
    """A run with other optimizer settings (N4's PyTorch defaults) is not a schedule: the clock
    leaves it out; a run whose older config.json predates those fields, at their defaults,
    stays in."""
    def folder(name: str, config: dict) -> None:
        (tmp_path / name).mkdir()
        write_json(tmp_path / name / "config.json", config)
        (tmp_path / name / "log.jsonl").write_text('{"step": 100, "val_loss": 2.5}\n')

    cfg = get_profile("prefix")
    folder("stated", cfg.to_dict())
    folder("no-warmup", get_profile("prefix", warmup=0).to_dict())
    older = cfg.to_dict()
    for field in ("init", "adam_beta2", "decay_scope"):
        older.pop(field)
    folder("older", older)
    folder("defaults", get_profile("prefix", init="pytorch", adam_beta2=0.999,
                                   decay_scope="all", weight_decay=0.01).to_dict())
    folder("clipless", get_profile("prefix", grad_clip=0.0).to_dict())
    assert sorted(r.name for r in clock_runs(tmp_path, cfg)) == ["no-warmup", "older", "stated"]


def test_the_unstated_settings_verdict_reads_row_500_and_sets_short_runs_beside_the_stated():
    from h2q_lib.book.wording.runs_tried import unstated_settings_values

    stated = run("stated-1000", {100: 2.6, 300: 2.46, 500: 2.30, 1000: 1.63})
    n1 = run("N1 no warm-up", {250: 2.48, 500: 2.379})
    n4 = run("N4 PyTorch's defaults", {100: 3.2, 300: 3.1}, init="pytorch")
    out = unstated_settings_values([n1, n4], stated)
    assert out["unstated_verdict"] == "none reproduces row 500"
    assert out["unstated_numbers"] == ("at step 500: N1 2.379 vs the report's 1.5178; "
                                       "N4 3.100 at step 300, +0.640 from the stated run there")
    close = run("N9 close", {500: 1.55})  # within 5 % of the report's 1.5178
    assert unstated_settings_values([close], stated)["unstated_verdict"] == (
        "row 500 reproduced by N9")
    assert unstated_settings_values([n4], stated)["unstated_verdict"] == "no run reached row 500"
    assert unstated_settings_values([], stated)["unstated_verdict"] == "not tested yet"
    from h2q_lib.book.wording.readings import readings_finding

    finding = readings_finding({"row100_training_verdict": "x", **out})
    assert ("Of the settings the report leaves unsaid, tried in those runs, none reproduces "
            "row 500 (at step 500: N1 2.379") in finding
