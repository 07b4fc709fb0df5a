"""The run folder: the contract between training, evaluation and the book.

A run folder holds

- ``.h2q-run``: the marker that says the project made this folder (``restart`` removes only
  folders that carry it, and only the entries below);
- ``config.json``: the recipe (``TrainConfig``), nothing about the machine;
- ``tokenizer.json``; ``log.jsonl`` (one record a logged step); ``samples.jsonl``;
- ``summary.json``: results plus what produced them (git revision, packages, device,
  precision and why, the machine);
- ``evaluation.json`` (``h2q evaluate``), ``checkpoints/``, ``final_model.safetensors``,
  ``token_cache/``.

Writes are atomic (a uniquely named temporary file, flushed, then renamed); one writer at a
time holds ``.lock`` (``RunLock``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from h2q_lib.core.errors import H2QError

MARKER = ".h2q-run"
LOCK = ".lock"
RUN_ENTRIES = (MARKER, LOCK, "config.json", "tokenizer.json", "log.jsonl", "samples.jsonl",
               "summary.json", "evaluation.json", "checkpoints", "final_model.safetensors",
               "token_cache", "precision_effect.json")


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class RunFolderError(H2QError):
    """A run folder that cannot be used as asked (locked, not ours, unwritable, full)."""


def shown(path: str | os.PathLike) -> str:
    """A path as the user gave it (never resolved into a machine's absolute path)."""
    return os.fspath(path)


# --- atomic writes ---------------------------------------------------------------------------


def no_space_left(path: str | os.PathLike) -> RunFolderError:
    return RunFolderError(f"no space left on the disk of {shown(path)}")


def is_disk_full(e: BaseException) -> bool:
    """``e`` says the disk is full: ENOSPC, or a library's error that quotes it (safetensors
    reports ``I/O error: No space left on device (os error 28)`` in a plain exception)."""
    if isinstance(e, OSError):
        return e.errno == errno.ENOSPC
    return f"(os error {errno.ENOSPC})" in str(e) or os.strerror(errno.ENOSPC) in str(e)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, fsync, then rename.

    A crash leaves either the old file or the new one under ``path``; a full disk raises
    ``RunFolderError("no space left on <path>")`` and the temporary file is removed.
    """
    path = Path(path)
    if path.is_dir():
        raise RunFolderError(f"{shown(path)} is a folder where h2q writes a file; move it "
                             "away and run again")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if is_disk_full(e):
            raise no_space_left(path) from None
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # after the write: a writer may replace the file (safetensors writes its own and
        # renames it onto tmp); mkstemp's 0600 becomes the usual permissions
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise no_space_left(path) from None
        raise


def file_sha256(path: str | os.PathLike, h=None) -> str:
    """sha256 of a file's bytes, read in blocks (``h``: a running hash to feed instead)."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check_writable(out: str | os.PathLike, param: str = "out") -> None:
    """One ``ConfigError`` naming ``param`` unless ``out`` is a file path in a folder that
    exists and can be written: checked before long work, so a bad path fails at once."""
    from h2q_lib.core.errors import ConfigError

    out = Path(out)
    allowed = "a file path in an existing folder that can be written"
    if out.is_dir() or not out.parent.is_dir():
        raise ConfigError(param, os.fspath(out), allowed)
    try:
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        raise ConfigError(param, os.fspath(out), f"{allowed} ({e.strerror or e})") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def strict(obj: object) -> object:
    """``obj`` with every non-finite float (inf, nan) as None: strict JSON has no Infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj: object, indent: int | None = None) -> str:
    """Strict JSON (non-finite numbers written as null), as every file of a run holds."""
    return json.dumps(strict(obj), indent=indent, allow_nan=False)


def loads(text: str | bytes) -> object:
    """``json.loads``, with the parser's own limits raised as the ``ValueError`` of any bad
    JSON: 100,000 nested brackets overflow its recursion (``RecursionError``), and a
    5,000-digit integer exceeds ``int``'s digit limit (already a ``ValueError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """A JSON object from ``path``; None when the file is missing, unreadable (``loads``: what
    the parser cannot hold included) or not an object."""
    try:
        value = loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --- JSON lines ------------------------------------------------------------------------------


def read_jsonl(path: str | os.PathLike, announce: Callable[[str], None] | None = None
               ) -> list[dict]:
    """Records of a JSON-lines file; a torn or unreadable line is dropped (and announced)."""
    p = Path(path)
    if not p.is_file():
        return []
    records = []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if announce:
                announce(f"{shown(p)}: line {n} is incomplete or corrupt and was dropped")
            continue
        records.append(record)
    return records


def append_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Append ``records``; on a full disk the file is cut back to its old end (no torn line)."""
    if Path(path).is_dir():
        raise RunFolderError(f"{shown(path)} is a folder where h2q writes a file; move it "
                             "away and run again")
    text = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
    with open(path, "ab", buffering=0) as f:
        end = os.fstat(f.fileno()).st_size
        try:
            rest = memoryview(text)
            while rest:
                rest = rest[f.write(rest):]
            os.fsync(f.fileno())
        except OSError as e:
            if not is_disk_full(e):
                raise
            with contextlib.suppress(OSError):
                f.truncate(end)
            raise no_space_left(path) from None


def truncate_jsonl(path: str | os.PathLike, after_step: int,
                   announce: Callable[[str], None] | None = None) -> None:
    """Keep the records up to ``after_step`` (a resume's checkpoint), rewriting atomically."""
    p = Path(path)
    if not p.is_file():
        return
    keep = [r for r in read_jsonl(p, announce) if isinstance(r.get("step"), int)
            and r["step"] <= after_step]
    write_text(p, "".join(dumps(r) + "\n" for r in keep))


# --- the folder ------------------------------------------------------------------------------


def is_run_folder(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / MARKER).is_file()


# What may be in a run's folder before the run starts (``h2q predict``'s prediction, token
# caches copied in to be reused): a folder holding only these is adopted by training.
BEFORE_RUN = frozenset({"prediction.json", "token_cache"})


def _before_run(entry: Path) -> bool:
    if entry.name == "token_cache":  # only if it holds nothing but h2q's own caches
        return entry.is_dir() and not entry.is_symlink() and all(
            OWN_FILES["token_cache"].match(p.name) for p in entry.iterdir())
    return entry.name in BEFORE_RUN and entry.is_file()


def check_run_dir_given(run_dir: str | os.PathLike) -> None:
    """An empty ``run_dir`` (papermill's ``-p run_dir ''``) would be the working folder."""
    from h2q_lib.core.errors import ConfigError

    if os.fspath(run_dir).strip() == "":
        raise ConfigError("run_dir", os.fspath(run_dir), "a folder path (not empty)")


def prepare_run_folder(run_dir: str | os.PathLike) -> Path:
    """Create (or adopt) ``run_dir`` as a run folder; one line when it cannot be one.

    Only a new or empty folder, one that carries the marker, or one holding only what
    ``h2q predict`` writes (``BEFORE_RUN``) is adopted: training replaces ``log.jsonl``,
    ``config.json`` and the other names of ``RUN_ENTRIES``, so a folder of the user's that
    holds files by those names must never become a run folder (as ``restart`` refuses it).
    """
    check_run_dir_given(run_dir)
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"run_dir={shown(run_dir)!r} is a file, not a folder")
    if run_dir.is_dir() and not is_run_folder(run_dir):
        try:
            foreign = sorted(p.name for p in run_dir.iterdir() if not _before_run(p))
        except OSError as e:
            raise RunFolderError(
                f"run_dir={shown(run_dir)!r} cannot be read: {e.strerror or e}") from None
        if foreign:
            listing = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise RunFolderError(
                f"run_dir={shown(run_dir)!r} is not a run folder made by h2q (no {MARKER} "
                f"marker) and is not empty (it holds {listing}), so nothing in it was "
                "touched; pick an empty or new folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
    except OSError as e:
        raise RunFolderError(
            f"run_dir={shown(run_dir)!r} cannot be written: {e.strerror or e}") from None
    _check_folders_writable(run_dir)
    try:
        if not is_run_folder(run_dir):
            write_text(run_dir / MARKER, "h2q-run-1\n")
    except OSError as e:
        raise RunFolderError(
            f"run_dir={shown(run_dir)!r} cannot be written: {e.strerror or e}") from None
    return run_dir


def _check_folders_writable(run_dir: Path) -> None:
    """One line unless a new file can be made in ``run_dir`` and in each of its folders
    that training writes: checked before the first step, because a checkpoint that cannot
    be written at step N loses the steps since the last one."""
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "token_cache"):
        if folder != run_dir and not folder.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            where = "it " if folder == run_dir else f"its {folder.name}/ folder "
            raise RunFolderError(
                f"run_dir={shown(run_dir)!r} cannot be written: {where}refuses a new file "
                f"({e.strerror or e}); training writes its log, checkpoints and token caches "
                "there, so nothing was trained: make it writable or pick another --run-dir"
            ) from None


# What the project writes inside a run folder's subfolders, by name (``restart`` removes
# these and nothing else; a file of the user's stays and is named).
OWN_FILES = {
    "checkpoints": re.compile(r"^(step_\d+\.pt|best\.pt)$"),
    "token_cache": re.compile(r"^wikitext-[\w.-]+\.(train|validation|test)\.[\w-]+\.(bin|json)$"),
}
class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``<run_dir>/.lock``.

    A second writer fails at once with one line naming the holder's process id. The lock
    belongs to an open file, so the system releases it when its process dies: a stale
    ``.lock`` file of a dead process is simply taken over. ``.lock`` is opened without
    following a symbolic link and must be a regular file: a link aimed at another file, a
    folder or a file that cannot be opened for writing is refused in one line, untouched.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def _refuse(self, why: str) -> RunFolderError:
        return RunFolderError(f"{shown(self.path)} {why}, so the run folder cannot be locked; "
                              "remove it and run again")

    def __enter__(self) -> RunLock:
        import fcntl

        if self.path.is_symlink():
            raise self._refuse("is a symbolic link")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._refuse("is a symbolic link") from None
            if e.errno == errno.EISDIR or self.path.is_dir():
                raise self._refuse("is a folder, not a file") from None
            raise self._refuse(f"cannot be opened for writing ({e.strerror or e})") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise self._refuse("is not a regular file")
        if info.st_nlink > 1:  # a hard link: locking truncates it, and so its other name
            os.close(fd)
            raise self._refuse(f"has {info.st_nlink} names (a hard link)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(
                f"{shown(self.path.parent)!r} is in use by another h2q process (pid {holder}); "
                "wait for it to finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
