"""``make publish``: ghp-import of the built book to a ``gh-pages`` branch, pushed only when
asked. A small fake ``_build/html`` (``index.html`` and one page per ``_toc.yml`` entry) is
published from a temporary repository to a temporary bare repository, so the test needs no
book build and never touches this checkout's branches."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from h2q_lib.book import publish
from h2q_lib.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "h2q test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "h2q test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def fake_book(folder: Path) -> Path:
    """A tiny built book: ``index.html``, a page per TOC entry and a ``_static`` file."""
    for name in ["index"] + publish.toc_pages():
        page = folder / f"{name}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<html><title>{name}</title></html>\n", encoding="utf-8")
    (folder / "_static").mkdir()
    (folder / "_static" / "style.css").write_text("body {}\n", encoding="utf-8")
    return folder


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    """A working repository with one commit whose ``origin`` is an empty bare repository."""
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "README.md").write_text("a repository\n", encoding="utf-8")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    return work, bare


def test_toc_pages_are_the_root_and_every_chapter():
    pages = publish.toc_pages()
    assert pages[0] == "intro"
    assert "notebooks/02_train" in pages and "reproducibility" in pages
    assert len(pages) == len(set(pages)) >= 8


def test_publish_pushes_index_nojekyll_and_every_chapter_to_a_bare_repository(tmp_path, repos):
    work, bare = repos
    html = fake_book(tmp_path / "html")
    publish.publish(html, repo=work, push=True)
    files = set(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare).split())
    expected = {"index.html", ".nojekyll", "_static/style.css"} | {
        f"{page}.html" for page in publish.toc_pages()}
    assert files == expected
    # the working branch and its files are untouched
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=work).strip() == "main"
    assert sorted(p.name for p in work.iterdir() if p.name != ".git") == ["README.md"]


def test_publish_does_not_push_unless_asked(tmp_path, repos):
    work, bare = repos
    publish.publish(fake_book(tmp_path / "html"), repo=work)
    assert "index.html" in git("ls-tree", "--name-only", "gh-pages", cwd=work).split()
    assert git("branch", "--list", "gh-pages", cwd=bare).strip() == ""


def test_publish_refuses_a_book_without_every_chapter(tmp_path, repos):
    work, _ = repos
    html = fake_book(tmp_path / "html")
    (html / "notebooks" / "04_evaluate.html").unlink()
    with pytest.raises(ConfigError, match=r"lacks notebooks/04_evaluate\.html"):
        publish.publish(html, repo=work)
    with pytest.raises(ConfigError, match="make book"):
        publish.publish(tmp_path / "not-built", repo=work)
    assert git("branch", "--list", "gh-pages", cwd=work).strip() == ""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_publish_pushes_only_with_push_1():
    """The Makefile target calls the function above, with --push only for PUSH=1 (dry run)."""
    def dry_run(*variables: str) -> str:
        return subprocess.run(["make", "-n", "--no-print-directory", "publish", *variables],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout

    plain, pushed = dry_run(), dry_run("PUSH=1", "REMOTE=upstream")
    assert "-m h2q_lib.book.publish" in plain and "--push" not in plain
    assert "-m h2q_lib.book.publish" in pushed and "--push --remote upstream" in pushed
