"""The compute behind the book: every committed run's steps, tokens, wall time and machine.

Read from each run folder's ``summary.json`` (a run of the tokenizer experiment is a folder
per tokenizer); nothing is timed here. The total is what a reader would spend to retrain
every committed run on the machines that trained them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from h2q_lib.core.run_folder import read_json


def _machine(summary: dict) -> str:
    machine = summary.get("machine") or {}
    cpu = machine.get("processor") or summary.get("device", "?")
    capability = machine.get("cpu_capability")
    threads = machine.get("torch_threads")
    parts = [cpu] + ([capability] if capability else []) + (
        [f"{threads} thread{'s' if threads != 1 else ''}"] if threads else [])
    return ", ".join(str(p) for p in parts)


DIRTY = "+dirty"  # what provenance.git_revision appends when the tree had uncommitted changes
CODE = "code (git revision)"


def code_revision(summary: dict) -> str:
    """The revisions a run's sessions trained at, or why they do not name its code: a
    revision with uncommitted changes (``+dirty``) ran code git does not hold, so such a run
    is identified by the ``library_fingerprint`` its ``summary.json`` records instead."""
    revisions = [str(s.get("git_revision")) for s in summary.get("sessions") or []
                 if s.get("git_revision")] or ([str(summary["git_revision"])]
                                               if summary.get("git_revision") else [])
    if not revisions:
        return "not recorded"
    shown = ", ".join(dict.fromkeys(r.removesuffix(DIRTY) for r in revisions))
    if any(r.endswith(DIRTY) for r in revisions):
        fingerprint = summary.get("library_fingerprint") or "not recorded"
        return f"{shown}, with uncommitted changes: fingerprint {fingerprint}"
    return shown


def compute_table(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """A row per committed run (every folder under ``runs_dir`` with a ``summary.json``, one
    level down for the tokenizer experiment's runs): steps, tokens, wall hours, machine, and
    the code it ran (``code_revision``)."""
    rows = []
    for summary_file in sorted(Path(runs_dir).glob("*/summary.json")) + sorted(
            Path(runs_dir).glob("*/*/summary.json")):
        summary = read_json(summary_file)
        if not summary or summary.get("elapsed_s") is None:
            continue
        rows.append({"run": str(summary_file.parent.relative_to(runs_dir)),
                     "steps": int(summary.get("steps", 0)),
                     "tokens": int(summary.get("tokens_seen", 0)),
                     "wall hours": float(summary["elapsed_s"]) / 3600,
                     "machine (its last session)": _machine(summary),
                     CODE: code_revision(summary)})
    return pd.DataFrame(rows, columns=["run", "steps", "tokens", "wall hours",
                                       "machine (its last session)", CODE])


def compute_total(table: pd.DataFrame) -> dict[str, float | int]:
    """Glue values: the runs counted, their steps, tokens and wall hours added up, and how
    many ran uncommitted code."""
    return {"compute_runs": len(table), "compute_steps": int(table["steps"].sum()),
            "compute_tokens": int(table["tokens"].sum()),
            "compute_hours": float(table["wall hours"].sum()),
            "compute_uncommitted_runs": int(table[CODE].str.contains("uncommitted").sum())}
