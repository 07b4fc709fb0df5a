"""Writing an export's folder safely: ``OUT`` is checked (never a user's folder), written
beside itself under a temporary name and renamed into place only when complete, so it is
never half written; what a killed export left is removed, and SIGTERM cleans up as Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from h2q_lib.core.errors import ConfigError
from h2q_lib.core.run_folder import is_disk_full, no_space_left
from h2q_lib.export.errors import ExportInterrupted

# Everything an export writes; a folder holding only these may be exported over.
EXPORT_FILES = frozenset({
    "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "README.md",
})
# Written first into every export (and its temporary folder): a folder is replaced by a new
# export only when it carries it, so a user's folder (a save_pretrained one, a README) never is.
EXPORT_MARKER = ".h2q-export"


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a Path, unless it cannot hold an export: a file, a symbolic link, a folder
    that is neither empty nor an earlier export (its ``EXPORT_MARKER`` and only the files an
    export writes: anything else is never replaced), or a path in a missing folder."""
    typed = os.fspath(out)
    out = Path(out)
    allowed = "a new or empty folder, or an earlier h2q export, in an existing folder"
    if out.is_symlink():
        raise ConfigError("OUT", typed, allowed + " (it is a symbolic link; give the folder "
                          "it points to)")
    if out.exists():
        if not out.is_dir():
            raise ConfigError("OUT", typed, allowed + " (it is a file)")
        entries = sorted(p.name for p in out.iterdir())
        foreign = [name for name in entries if name not in EXPORT_FILES | {EXPORT_MARKER}]
        if foreign:
            raise ConfigError("OUT", typed, f"{allowed} (it holds {', '.join(foreign[:5])})")
        if entries and EXPORT_MARKER not in entries:
            raise ConfigError("OUT", typed, f"{allowed} (it holds {', '.join(entries[:5])} "
                              f"but no {EXPORT_MARKER} marker: not written by h2q export)")
    if not out.absolute().parent.is_dir():
        raise ConfigError("OUT", typed, allowed)
    return out


def _temporary(out: Path, kind: str) -> re.Pattern:
    """The names ``written_in_place`` and ``_put_in_place`` give their temporary folders
    beside ``out`` (mkdtemp's)."""
    return re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.{kind}$")


def _hold(folder: Path) -> int:
    """An exclusive lock on ``folder`` while this export uses it (``remove_stale_exports``
    leaves a held folder alone: another export at work)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale_exports(out: Path) -> list[Path]:
    """Remove what a killed export of ``out`` left beside it: ``.OUT.*.tmp`` folders that
    carry ``EXPORT_MARKER`` (or are empty) and ``.OUT.*.old`` folders holding only such an
    export, none held by a live export. Nothing of another name or content is touched."""
    import fcntl

    removed = []
    parent = out.absolute().parent
    tmp, old = _temporary(out, "tmp"), _temporary(out, "old")
    for entry in parent.iterdir():
        if not (tmp.match(entry.name) or old.match(entry.name)) or entry.is_symlink() \
                or not entry.is_dir():
            continue
        inside = entry / "export" if old.match(entry.name) else entry
        names = {p.name for p in entry.iterdir()}
        if old.match(entry.name) and names not in (set(), {"export"}):
            continue
        if inside.is_dir() and not inside.is_symlink() and any(inside.iterdir()) \
                and not (inside / EXPORT_MARKER).is_file():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # another export is writing it
        try:
            shutil.rmtree(entry)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends an export as Ctrl-C does: its temporary folder is removed on the way."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise ExportInterrupted("interrupted by SIGTERM; the export was not written and its "
                                "temporary folder was removed")

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def written_in_place(out: Path, typed: str) -> Iterator[Path]:
    """A new temporary folder beside ``out``, carrying ``EXPORT_MARKER``, for the caller to
    write into; renamed into place as ``out`` (``_put_in_place``) when the caller is done,
    removed when it fails or is stopped (SIGTERM too). ``typed`` is ``OUT`` as given: a
    folder that cannot be written is one ``ConfigError`` naming it."""
    parent = out.absolute().parent
    with _sigterm_as_interrupt():
        remove_stale_exports(out)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
        except OSError as e:
            if is_disk_full(e):
                raise no_space_left(out) from None
            raise ConfigError("OUT", typed, f"a folder path that can be written "
                              f"({e.strerror or e})") from None
        held = _hold(tmp)
        try:
            (tmp / EXPORT_MARKER).write_text("h2q-export-1\n", encoding="utf-8")
            yield tmp
            # mkdtemp's 0700 (and some writers' 0600) become the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            for path in tmp.iterdir():
                os.chmod(path, 0o666 & ~umask)
            _put_in_place(tmp, out, parent)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(e):
                raise no_space_left(out) from None
            if isinstance(e, OSError):
                raise ConfigError("OUT", typed, f"a folder that can be written "
                                  f"({e.strerror or e})") from None
            raise
        finally:
            os.close(held)


def _put_in_place(tmp: Path, out: Path, parent: Path) -> None:
    """Rename the written ``tmp`` to ``out``. An existing ``out`` (empty, or an earlier export)
    is swapped as a whole where it can be renamed; a folder that cannot be (a mount point,
    the working folder) gets the files moved into it, the marker first."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not any(out.iterdir()) or out.is_mount() \
            or out.resolve() == Path.cwd().resolve():
        for name in sorted(p.name for p in out.iterdir()):  # an earlier export's files
            (out / name).unlink()
        names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n != EXPORT_MARKER)
        for name in names:
            os.replace(tmp / name, out / name)
        tmp.rmdir()
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
    os.replace(out, old / "export")
    os.replace(tmp, out)
    shutil.rmtree(old)
