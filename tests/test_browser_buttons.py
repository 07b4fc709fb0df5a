"""The launch, download and repository buttons of the built book, in a real headless Chromium.

Same setting as ``test_browser.py`` (whose helpers it uses): Debian's ``chromium`` and
``chromium-driver`` under Selenium, the built HTML (``_build/html``, or ``H2Q_BOOK_HTML``)
served on 127.0.0.1; it skips and says why where there is no browser or no built book.

On every notebook chapter the reader opens the launch menu and sees Binder and Colab, whose
links open that chapter's executed notebook, ``<path_to_book>/<page>.ipynb`` of the repository
and branch in ``_config.yml``, a file the repository holds; the download menu offers the
notebook (``.ipynb``, the same notebook as the repository's) and ``.pdf``; the repository
button links to the repository. A Markdown page offers its ``.md`` source.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from test_browser import (
    HTML_DIR,
    REPO_ROOT,
    is_notebook_page,
    serve,
    start_chromium,
    toc_pages,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CONFIG_FILE = REPO_ROOT / "_config.yml"
NOTEBOOK_PAGES = [page for page in toc_pages() if is_notebook_page(page)]
MARKDOWN_PAGES = [page for page in toc_pages() if not is_notebook_page(page)]
SHOWN_WITHIN_S = 5.0


def expected_links(page: str, config_file: Path = CONFIG_FILE) -> dict[str, str]:
    """Where the buttons of ``page`` (a notebook chapter) must point, from ``_config.yml``."""
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    repo, launch = config["repository"], config["launch_buttons"]
    url, branch = repo["url"].rstrip("/"), repo.get("branch", "main")
    path = f"{repo.get('path_to_book', '').strip('/')}/{page}.ipynb".lstrip("/")
    org_repo = urlsplit(url).path.strip("/")
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[launch.get("notebook_interface",
                                                                  "classic")]
    return {
        "path": path,
        "repository": url,
        "binder": f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{branch}"
                  f"?urlpath={ui}/{path}",
        "colab": f"{launch['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{path}",
    }


def _shown(driver, css: str) -> Any:
    """The first element matching ``css`` once it is displayed (None after a few seconds)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + SHOWN_WITHIN_S
    while True:
        found = [el for el in driver.find_elements(By.CSS_SELECTOR, css) if el.is_displayed()]
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.1)


def _open_menu(driver, menu: str) -> list[str]:
    """Click the toggle of the header dropdown ``menu``; problems if it is not there."""
    toggle = _shown(driver, f".dropdown-{menu} > button.dropdown-toggle")
    if toggle is None:
        return [f"no visible {menu} menu in the page header"]
    toggle.click()
    if _shown(driver, f".dropdown-{menu} .dropdown-menu") is None:
        return [f"the {menu} menu does not open when clicked"]
    return []


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local server
        return response.read()


def notebook_button_problems(driver, base_url: str, page: str, book_dir: Path,
                             config_file: Path = CONFIG_FILE) -> list[str]:
    """What is wrong with the launch, download and repository buttons of chapter ``page``."""
    want = expected_links(page, config_file)
    problems = []
    if not (REPO_ROOT / want["path"]).is_file():
        problems.append(f"the launch links open {want['path']}, which the repository lacks")
    driver.get(base_url + f"{page}.html")
    problems += _open_menu(driver, "launch-buttons")
    # the items by their visible text (Bootstrap's tooltips take their title attributes)
    _shown(driver, ".dropdown-launch-buttons a.dropdown-item")
    items = {el.text.strip().lower(): el.get_attribute("href") for el in driver.find_elements(
        "css selector", ".dropdown-launch-buttons a.dropdown-item") if el.is_displayed()}
    for name in ("binder", "colab"):
        if name not in items:
            problems.append(f"no visible {name.title()} button in the launch menu ({items})")
        elif items[name] != want[name]:
            problems.append(f"{name} links to {items[name]}, not {want[name]}")
    driver.find_element("tag name", "body").click()  # close the menu

    problems += _open_menu(driver, "download-buttons")
    source = _shown(driver, ".dropdown-download-buttons a.btn-download-source-button")
    if source is None or source.text.strip() != ".ipynb":
        problems.append("no visible .ipynb download button")
    else:
        href = source.get_attribute("href")
        if urlsplit(href).path != f"/_sources/{page}.ipynb":
            problems.append(f".ipynb download links to {href}, not _sources/{page}.ipynb")
        else:
            served = json.loads(_fetch(href))
            committed = json.loads((book_dir / f"{page}.ipynb").read_text(encoding="utf-8"))
            if served != committed:
                problems.append(f"the .ipynb download is not book/{page}.ipynb")
    pdf = _shown(driver, ".dropdown-download-buttons .btn-download-pdf-button")
    if pdf is None or pdf.text.strip() != ".pdf":
        problems.append("no visible .pdf download button")
    driver.find_element("tag name", "body").click()

    repo = _shown(driver, "a.btn-source-repository-button")
    if repo is None:
        problems.append("no visible repository button")
    elif repo.get_attribute("href").rstrip("/") != want["repository"]:
        problems.append(f"the repository button links to {repo.get_attribute('href')}, "
                        f"not {want['repository']}")
    return problems


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="h2q-chromium-") as profile_dir:
        driver = start_chromium(profile_dir)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def base_url(browser) -> Iterator[str]:
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip("book not built: run `make book` first")
    with serve(HTML_DIR) as url:
        yield url


def test_there_are_notebook_chapters():
    assert len(NOTEBOOK_PAGES) >= 5 and "notebooks/02_train" in NOTEBOOK_PAGES


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chapter_has_launch_download_and_repository_buttons(page: str, browser,
                                                             base_url: str) -> None:
    problems = notebook_button_problems(browser, base_url, page, REPO_ROOT / "book")
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page", MARKDOWN_PAGES)
def test_markdown_page_offers_its_md_source(page: str, browser, base_url: str) -> None:
    browser.get(base_url + f"{page}.html")
    assert not _open_menu(browser, "download-buttons")
    source = _shown(browser, ".dropdown-download-buttons a.btn-download-source-button")
    assert source is not None and source.text.strip() == ".md"
    assert urlsplit(source.get_attribute("href")).path == f"/_sources/{page}.md"
    served = _fetch(source.get_attribute("href")).decode("utf-8")
    assert served == (REPO_ROOT / "book" / f"{page}.md").read_text(encoding="utf-8")


def test_checks_catch_wrong_links_and_a_wrong_download(browser, tmp_path: Path) -> None:
    """The real built chapter with its Binder link and its downloadable notebook spoilt."""
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip("book not built: run `make book` first")
    page = "notebooks/02_train"
    want = expected_links(page)
    html = (HTML_DIR / f"{page}.html").read_text(encoding="utf-8")
    assert want["binder"] in html
    site = tmp_path / "site"
    (site / "notebooks").mkdir(parents=True)
    (site / f"{page}.html").write_text(
        html.replace(want["binder"], want["binder"].replace("02_train", "04_evaluate")),
        encoding="utf-8")
    (site / "_static").symlink_to(HTML_DIR / "_static", target_is_directory=True)
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "book" / f"{page}.ipynb", book / f"{page}.ipynb")
    (site / "_sources" / "notebooks").mkdir(parents=True)
    (site / "_sources" / f"{page}.ipynb").write_text('{"cells": []}', encoding="utf-8")
    with serve(site) as url:
        problems = notebook_button_problems(browser, url, page, book)
    assert any(p.startswith("binder links to") and "04_evaluate" in p for p in problems), problems
    assert f"the .ipynb download is not book/{page}.ipynb" in problems, problems
    assert not any(p.startswith("colab") for p in problems), problems
