"""Publish the built book to a ``gh-pages`` branch with ``ghp-import`` (``make publish``).

``publish`` checks that the HTML folder holds ``index.html`` and a page for every entry of
``_toc.yml`` (a half-built book is refused in one line), then runs ``ghp-import -n`` in the
repository: the folder becomes the only content of the branch's new commit, with a
``.nojekyll`` so that GitHub Pages serves ``_static/`` and ``_sources/`` as they are. Nothing
is pushed unless asked (``push=True``, ``make publish PUSH=1``).

The GitHub Actions workflow (``.github/workflows/book.yml``) deploys with the Pages actions
instead; this is the route for a repository whose Pages source is a branch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from h2q_lib.core.errors import ConfigError, H2QError

ROOT = Path(__file__).resolve().parents[2]  # the repository
TOC_FILE = ROOT / "_toc.yml"
DEFAULT_HTML = ROOT / "_build" / "html"


def _toc_files(entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        if "file" in entry:
            yield str(entry["file"])
        for key in ("parts", "chapters", "sections"):
            yield from _toc_files(entry.get(key) or [])


def toc_pages(toc_file: str | os.PathLike = TOC_FILE) -> list[str]:
    """The root page and every ``file:`` entry of a jb-book TOC, without extension."""
    toc = yaml.safe_load(Path(toc_file).read_text(encoding="utf-8")) or {}
    pages = [str(toc["root"])] if "root" in toc else []
    pages += _toc_files([toc])
    return [Path(page).with_suffix("").as_posix() for page in pages]


def missing_pages(html_dir: str | os.PathLike, toc_file: str | os.PathLike = TOC_FILE
                  ) -> list[str]:
    """``index.html`` and the TOC's ``<page>.html`` files that ``html_dir`` lacks."""
    html = Path(html_dir)
    wanted = ["index.html"] + [f"{page}.html" for page in toc_pages(toc_file)]
    return [name for name in wanted if not (html / name).is_file()]


def ghp_import_command() -> str:
    """``ghp-import`` beside this Python (the venv's), else on ``PATH``."""
    beside = Path(sys.executable).parent / "ghp-import"
    found = str(beside) if beside.is_file() else shutil.which("ghp-import")
    if found is None:
        raise H2QError("ghp-import is not installed: pip install -e '.[dev]' (the dev and "
                       "test extras carry it)")
    return found


def publish(html_dir: str | os.PathLike = DEFAULT_HTML, repo: str | os.PathLike = ROOT,
            branch: str = "gh-pages", push: bool = False, remote: str = "origin",
            message: str = "Publish the book (ghp-import of _build/html)",
            toc_file: str | os.PathLike = TOC_FILE) -> None:
    """Commit ``html_dir`` as the whole content of ``branch`` in the git repository ``repo``
    (with ``.nojekyll``); with ``push`` also push the branch to ``remote``."""
    html = Path(html_dir)
    if not html.is_dir():
        raise ConfigError("html_dir", str(html_dir), "a built book folder (run `make book`)")
    missing = missing_pages(html, toc_file)
    if missing:
        raise ConfigError("html_dir", str(html_dir), "a complete book (run `make book`): it "
                          "lacks " + ", ".join(missing))
    command = [ghp_import_command(), "--no-jekyll", "--branch", branch, "--message", message]
    if push:
        command += ["--push", "--remote", remote]
    subprocess.run([*command, str(html.resolve())], cwd=repo, check=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m h2q_lib.book.publish", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default=str(DEFAULT_HTML))
    parser.add_argument("--repo", default=str(ROOT), help="the git repository (default: this)")
    parser.add_argument("--branch", default="gh-pages")
    parser.add_argument("--push", action="store_true", help="push the branch to --remote")
    parser.add_argument("--remote", default="origin")
    args = parser.parse_args(argv)
    try:
        publish(args.html_dir, repo=args.repo, branch=args.branch, push=args.push,
                remote=args.remote)
    except H2QError as err:
        sys.exit(str(err))
    except subprocess.CalledProcessError as err:
        sys.exit(f"ghp-import failed (exit status {err.returncode})")
    where = f"pushed to {args.remote}/{args.branch}" if args.push else (
        f"branch {args.branch} written; not pushed (make publish PUSH=1 pushes it)")
    print(f"published {args.html_dir}: {where}")


if __name__ == "__main__":
    main()
