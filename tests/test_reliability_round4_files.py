"""Reliability, round four (issue #38), the rows about files a run folder holds: a hard-linked
lock, JSON the parser cannot hold, a user's file shaped like a temporary, and bad values too
large to print.

Each test names its row of the issue's table and failed on the code the issue was filed
against.
"""

from __future__ import annotations

import os

import pytest

from h2q_lib.core import run_cleanup
from h2q_lib.core import run_folder as runs
from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import RunFolderError, RunLock


def test_a_hard_linked_lock_is_refused_and_its_other_name_kept(tmp_path):
    """row 9: locking truncated the file that ``.lock`` shared its content with."""
    precious = tmp_path / "notes.txt"
    precious.write_text("a user's notes\n")
    run = tmp_path / "run"
    run.mkdir()
    os.link(precious, run / ".lock")
    with pytest.raises(RunFolderError, match=r"\.lock has 2 names \(a hard link\)"):
        with RunLock(run):
            pass
    assert precious.read_text() == "a user's notes\n"


def test_a_plain_lock_file_is_still_taken(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("text", ["[" * 100_000, '{"steps": ' + "9" * 5_000 + "}"],
                         ids=["100,000 nested brackets", "a 5,000-digit integer"])
def test_json_the_parser_cannot_hold_is_an_unreadable_file(tmp_path, text):
    """row 13: ``RecursionError`` / ``ValueError`` escaped from every reader of run JSON."""
    path = tmp_path / "summary.json"
    path.write_text(text)
    assert runs.read_json(path) is None
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n' + text + "\n")
    said = []
    assert runs.read_jsonl(log, said.append) == [{"step": 1}]
    assert said == [f"{runs.shown(log)}: line 2 is incomplete or corrupt and was dropped"]
    with pytest.raises(ValueError):
        runs.loads(text)


def test_only_temporaries_of_h2q_files_are_removed_as_stale(tmp_path):
    """row 19: a user's ``.draft.12345678.tmp`` was deleted as a killed writer's temporary."""
    (tmp_path / "checkpoints").mkdir()
    ours = [tmp_path / ".summary.json.ab12cd34.tmp",
            tmp_path / "checkpoints" / ".step_4.pt.k3x9_q0a.tmp"]
    users = [tmp_path / ".draft.12345678.tmp",
             tmp_path / "checkpoints" / ".notes.txt.12345678.tmp"]
    for path in ours + users:
        path.write_text("x")
    removed = run_cleanup.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(ours)
    assert all(p.exists() for p in users)


def _alias_bomb(levels: int = 9) -> str:
    """A YAML text of a few hundred bytes whose value, written out, holds 9**levels items."""
    layers = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    layers += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "steps: [" + ", ".join(layers) + "]"


def test_a_yaml_alias_bomb_in_overrides_is_a_short_message():
    """row 16: a 474-byte alias bomb made a 2.3 GB error message (4.7 GB resident), and under
    papermill a 366-byte value wrote a 56 MB notebook (the message in the cell's output)."""
    from h2q_lib.core.errors import MAX_SHOWN
    from h2q_lib.training.profiles import notebook_configs

    bomb = _alias_bomb()
    assert len(bomb) < 600
    with pytest.raises(ConfigError, match=r"^steps=\[.*\.\.\..* is not allowed") as e:
        notebook_configs("smoke", bomb)
    message = str(e.value)
    assert "\n" not in message and len(message) < MAX_SHOWN + 200


@pytest.mark.parametrize("value", ["x" * 10_000_000, list(range(1_000_000)),
                                   {str(i): i for i in range(100_000)}, 7 ** 100_000,
                                   [[[[[[[[1]]]]]]]]], ids=["string", "list", "dict",
                                                            "integer", "nesting"])
def test_a_bad_value_is_shown_bounded(value):
    """row 16: every ``ConfigError`` shows at most ``MAX_SHOWN`` characters of its value."""
    from h2q_lib.core.errors import MAX_SHOWN, bounded_repr

    shown = bounded_repr(value)
    assert len(shown) <= MAX_SHOWN and ("..." in shown or shown.startswith("<an integer of"))
    assert len(str(ConfigError("steps", value, "a positive integer"))) < MAX_SHOWN + 100


def test_a_short_value_is_shown_whole():
    from h2q_lib.core.errors import bounded_repr

    for value in ("runs/prefix", 1e39, -1, [1, 2], {"steps": 100}, None, float("nan")):
        assert bounded_repr(value) == repr(value)
