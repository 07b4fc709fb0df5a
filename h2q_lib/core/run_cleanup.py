"""Cleaning a run folder: ``restart`` (remove what h2q wrote, keep the user's files and name
them) and the stale temporaries an interrupted write leaves (removed when a run resumes).

Only what the run folder's contract (``core.run_folder``: ``RUN_ENTRIES``, ``OWN_FILES``)
names is ever removed, and only in a folder that carries the marker.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from h2q_lib.core.run_folder import (
    BEFORE_RUN,
    LOCK,
    MARKER,
    OWN_FILES,
    RUN_ENTRIES,
    RunFolderError,
    RunLock,
    is_run_folder,
    shown,
)

# ``atomic_write``'s temporaries: ``.<name>.<8 random characters>.tmp``
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def is_own_temporary(entry: Path, folder: str | None = None) -> bool:
    """Whether ``entry`` is a temporary of a file that h2q writes in ``folder`` (None: the run
    folder itself; else ``checkpoints`` or ``token_cache``). A user's ``.draft.12345678.tmp``
    has the shape but not the name of one of h2q's files, so it is not ours."""
    name = match["name"] if (match := TEMPORARY.match(entry.name)) else None
    if name is None:
        return False
    return bool(OWN_FILES[folder].match(name)) if folder else name in {*RUN_ENTRIES, *BEFORE_RUN}


def _refuse_symlink(run_dir: Path, what: str) -> None:
    if run_dir.is_symlink():
        raise RunFolderError(
            f"{what}: {shown(run_dir)!r} is a symbolic link; give the folder it points to "
            f"({os.readlink(run_dir)!r}) instead")


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporaries a killed writer left (``.<name>.<random>.tmp`` files in the run
    folder, ``checkpoints/`` and ``token_cache/``). Call it holding the lock: no writer of
    this folder is alive then. Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for sub in (None, "checkpoints", "token_cache"):
        folder = run_dir / sub if sub else run_dir
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if is_own_temporary(entry, sub) and entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def restart_run_folder(run_dir: str | os.PathLike,
                       announce: Callable[[str], None] | None = print) -> list[Path]:
    """Remove what the project wrote in ``run_dir``; refuse a folder the project did not make.

    Only a folder with the ``.h2q-run`` marker is touched (a symbolic link to one is refused),
    and only its known entries (``RUN_ENTRIES``; inside ``checkpoints/`` and ``token_cache/``
    only the files the project names, ``OWN_FILES``, and temporaries): a file of the user's
    stays, with its folder, and is named. Returns the files kept.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() and not run_dir.is_symlink():
        return []
    _refuse_symlink(run_dir, "restart")
    if not run_dir.is_dir():
        raise RunFolderError(f"restart: {shown(run_dir)!r} is a file, not a run folder")
    if not is_run_folder(run_dir):
        if not any(run_dir.iterdir()):
            return []
        raise RunFolderError(
            f"restart: {shown(run_dir)!r} is not a run folder made by h2q (no {MARKER} "
            "marker), so nothing in it was deleted; pick an empty or new folder")
    here = Path.cwd().resolve()
    if here == run_dir.resolve() or run_dir.resolve() in here.parents:
        raise RunFolderError(
            f"restart: {shown(run_dir)!r} is the current folder or holds it, so nothing in it "
            "was deleted; run the command from outside the run folder")
    try:
        return _remove_own_entries(run_dir, announce)
    except OSError as e:  # an immutable or foreign-owned file: the marker is removed last
        raise RunFolderError(
            f"restart: {shown(e.filename or run_dir)!r} could not be removed "
            f"({e.strerror or e}); the run folder keeps its {MARKER} marker and what was "
            "not yet removed") from None


def _remove_own_entries(run_dir: Path, announce: Callable[[str], None] | None) -> list[Path]:
    """``restart_run_folder``'s removal, the marker last, so that a folder that fails half
    way is still recognised as a run folder."""
    kept: list[Path] = []
    with RunLock(run_dir):
        for name in RUN_ENTRIES:
            entry = run_dir / name
            if name in (LOCK, MARKER):
                continue
            if name in OWN_FILES and entry.is_dir() and not entry.is_symlink():
                for inner in entry.iterdir():
                    ours = OWN_FILES[name].match(inner.name) or is_own_temporary(inner, name)
                    if ours and (inner.is_file() or inner.is_symlink()):
                        inner.unlink()
                    else:
                        kept.append(inner)
                if not any(entry.iterdir()):
                    entry.rmdir()
            elif entry.is_dir() and not entry.is_symlink():
                kept.append(entry)  # a folder where h2q writes a file: the user's
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
        for entry in run_dir.iterdir():
            if is_own_temporary(entry) and entry.is_file():
                entry.unlink()
        (run_dir / MARKER).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (run_dir / LOCK).unlink()
    if not any(run_dir.iterdir()):
        run_dir.rmdir()
    if kept and announce:
        announce(f"restart: kept {len(kept)} file(s) that h2q did not write: "
                 + ", ".join(shown(p) for p in sorted(kept)))
    return kept
