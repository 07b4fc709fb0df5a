"""Open every page of the built book in a real headless Chromium and check what a reader sees.

The driver is Selenium (W3C WebDriver) with Debian's ``chromium`` and ``chromium-driver``
packages: the driver is built for exactly the browser it drives and both come from the same
apt source, and ``selenium`` is a pure-Python wheel from PyPI. (Playwright was the other
choice; its Python package expects a browser build it downloads itself from its own CDN,
and drives a system Chromium only as an untested version.) ``.ci/run`` installs the two
packages; where no browser or driver can be had the tests skip and say why.

The built HTML (``_build/html``) is served on 127.0.0.1 and each page in ``_toc.yml`` is
loaded at a 1280 x 2000 window. Per page:

- it loads with a title and non-empty main content; a notebook page shows at least one table
  and one image; no image is broken; the console shows no errors (failed fetches to other
  hosts are ignored: there is no network); a screenshot is written to
  ``_build/screenshots/<page>.png`` (``test_page_renders_in_browser``);
- the book's reading quality (issue #23), one test each: at 1280 px no table or figure is
  wider than its container; no table cell or cell output shows ``NaN``, ``None`` or
  ``dtype:``, and no table cell ends in an ellipsis (a cut value); no code cell's input is
  visible; the intro's verdict starts within its first 800 px; at a phone's 390 px no table
  or figure of the intro is wider than its container, and on every page a table still wider
  than its box scrolls under a visible cue (issue #34).

``H2Q_BOOK_HTML`` and ``H2Q_BOOK_TOC`` point the test at another built book (relative paths
resolve against the repository root).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from h2q_lib.book import publish

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE_TIMEOUT_S = 30.0
# a real browser over the built HTML: part of `make test-all` (CI), not `make test`
pytestmark = [pytest.mark.slow, pytest.mark.browser]

WINDOW = (1280, 2000)
PHONE = (390, 844)  # a phone's viewport in CSS pixels, for the intro page
VERDICT_WITHIN_PX = 800
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")

# Console noise from the jupyter-book 1.x toolchain itself, the same on every page of any book;
# everything else fails the test.
# - Sphinx 7.4 emits inline <script> bodies added by extensions twice (fixed upstream in
#   sphinx-doc/sphinx PR 13402, Sphinx 8.2), so sphinx-thebe's `const THEBE_JS_URL` is
#   declared twice. Thebe is not used by this book.
# - pydata-sphinx-theme logs this once in a browser profile with no stored light/dark mode.
KNOWN_TOOLCHAIN_NOISE = (
    re.compile(r"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"),
    re.compile(r"Got invalid theme mode: \. Resetting to auto\."),
)


def _from_env(name: str, default: str) -> Path:
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else REPO_ROOT / path


HTML_DIR = _from_env("H2Q_BOOK_HTML", "_build/html")
TOC_FILE = _from_env("H2Q_BOOK_TOC", "_toc.yml")
SCREENSHOT_DIR = HTML_DIR.parent / "screenshots"


def toc_pages() -> list[str]:
    """The root page and every ``file:`` entry of the TOC, without extension, relative to
    ``book/`` (``publish.toc_pages``); none when the TOC file is absent."""
    return publish.toc_pages(TOC_FILE) if TOC_FILE.is_file() else []


def root_page() -> str | None:
    pages = toc_pages()
    return pages[0] if pages else None


def is_notebook_page(page: str) -> bool:
    return page.startswith("notebooks/0")


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free local port; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _first_found(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def start_chromium(profile_dir: str):
    """A headless Chromium under Selenium with Debian's chromedriver; skips with the reason
    when selenium, the browser or the driver is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    from selenium.common.exceptions import WebDriverException

    binary, driver_path = _first_found(BROWSERS), _first_found(DRIVERS)
    if binary is None or driver_path is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(`apt-get install chromium chromium-driver`, as .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", "--mute-audio",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver is given: Selenium Manager (which would download one) is not used
    service = webdriver.ChromeService(executable_path=driver_path)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except WebDriverException as err:
        pytest.fail(f"could not start headless Chromium with {driver_path}: {err.msg}")
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    # --window-size is the window's outer size: grow it by the frame so that the page
    # itself (the viewport) is WINDOW
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    if tuple(inner) != WINDOW:
        driver.set_window_size(2 * WINDOW[0] - inner[0], 2 * WINDOW[1] - inner[1])
    return driver


# Runs in the page after the load event: make lazy images load, wait for every image to
# settle, then describe what a reader sees.
PAGE_REPORT_JS = """
return (async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = 'eager'; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 10000);
  })));
  const main = document.querySelector('main') || document.querySelector('article')
    || document.body;
  const article = main.querySelector('article') || main;
  const visible = el => el.getClientRects().length > 0 && el.getBoundingClientRect().width > 0;
  const short = text => text.replace(/\\s+/g, ' ').trim().slice(0, 60);
  const describe = el => el.tagName.toLowerCase()
    + (el.getAttribute('alt') ? ` "${short(el.getAttribute('alt'))}"` : '')
    + (el.tagName === 'TABLE' ? ` "${short(el.innerText)}"` : '');

  // tables and figures wider than their container (the parent, within the article)
  const wide = [];
  for (const el of article.querySelectorAll('table, img, figure, svg')) {
    if (!visible(el)) continue;
    const width = Math.max(el.getBoundingClientRect().width, el.scrollWidth || 0);
    const room = Math.min(el.parentElement.clientWidth || Infinity, article.clientWidth);
    if (width > room + 1) {
      wide.push(`${describe(el)}: ${Math.round(width)} px in ${Math.round(room)} px`);
    }
  }
  // tables whose box scrolls sideways (columns out of view) without a visible cue above
  // them: the class scroll-cue.js sets and a ::before text from narrow-tables.css
  const uncued = [];
  for (const el of article.querySelectorAll('table')) {
    if (!visible(el)) continue;
    let box = el.parentElement;
    const scrolls = b => ['auto', 'scroll'].includes(getComputedStyle(b).overflowX);
    while (box && box !== article && !scrolls(box)) {
      box = box.parentElement;
    }
    if (!box || box === article || box.scrollWidth <= box.clientWidth + 1) continue;
    const cue = el.closest('.h2q-scrolls');
    const text = cue ? getComputedStyle(cue, '::before').content : 'none';
    if (!text || text === 'none' || text === 'normal' || text === '""') {
      uncued.push(`${describe(el)}: ${Math.round(box.scrollWidth)} px in `
                  + `${Math.round(box.clientWidth)} px`);
    }
  }
  // values that are not values: NaN, None, dtype: in cells and outputs; cut cells
  const badText = /\\b(NaN|None|NaT)\\b|<NA>|dtype:/;
  const badValues = [];
  for (const cell of article.querySelectorAll('td, th')) {
    const text = cell.innerText.trim();
    if (badText.test(text) || /(\\u2026|\\.\\.\\.)$/.test(text)) {
      badValues.push(`cell "${short(text)}"`);
    }
  }
  for (const out of article.querySelectorAll('.cell_output')) {
    for (const line of out.innerText.split('\\n')) {
      if (badText.test(line) && !badValues.some(v => v.includes(short(line)))) {
        badValues.push(`output "${short(line)}"`);
      }
    }
  }
  // code cell inputs a reader sees
  const codeInputs = Array.from(article.querySelectorAll('.cell_input, .input_area'))
    .filter(visible).map(el => short(el.innerText));
  // where the verdict (an admonition titled "Verdict") starts: its first line of text
  let verdict = null;
  for (const box of article.querySelectorAll('.admonition')) {
    const title = box.querySelector('.admonition-title');
    if (!title || title.innerText.trim() !== 'Verdict') continue;
    const first = Array.from(box.querySelectorAll('p')).find(p => p !== title) || title;
    const range = document.createRange();
    range.selectNodeContents(first);
    const line = range.getClientRects()[0] || first.getBoundingClientRect();
    verdict = {titleTop: Math.round(title.getBoundingClientRect().top + window.scrollY),
               firstLineBottom: Math.round(line.bottom + window.scrollY)};
    break;
  }
  return {
    title: document.title.trim(),
    mainText: (main.innerText || '').trim().length,
    tables: main.querySelectorAll('table').length,
    images: main.querySelectorAll('img').length,
    broken: images.filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.currentSrc || img.getAttribute('src') || '(no src)'),
    viewport: [window.innerWidth, window.innerHeight],
    wide: wide, uncued: uncued, badValues: badValues, codeInputs: codeInputs,
    verdict: verdict,
  };
})();
"""


def _is_local(url: str | None) -> bool:
    return not url or urlsplit(url).hostname in LOCAL_HOSTS or url.startswith("data:")


def console_errors(entries: list[dict[str, Any]]) -> list[str]:
    """Errors of Chromium's browser log: console errors, uncaught exceptions, failed loads.

    A failed fetch from a host other than the local server is ignored (no network here), as
    are ``/favicon.ico`` and ``KNOWN_TOOLCHAIN_NOISE``.
    """
    errors = []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = str(entry.get("message", ""))
        url = message.split(" ", 1)[0]
        if entry.get("source") == "network" and not _is_local(url):
            continue
        if urlsplit(url).path == "/favicon.ico":
            continue
        errors.append(f"{entry.get('source', 'log')}: {message}")
    return [e for e in errors if not any(p.search(e) for p in KNOWN_TOOLCHAIN_NOISE)]


@dataclass
class Visit:
    """What one page showed: the page report, its console errors and its screenshot."""

    url: str
    report: dict[str, Any]
    errors: list[str]
    screenshot: Path


class Book:
    """A served folder of HTML in one browser; each page is visited once and its visit kept."""

    def __init__(self, driver, base_url: str, html_dir: Path = HTML_DIR,
                 screenshot_dir: Path = SCREENSHOT_DIR) -> None:
        self.driver, self.base_url = driver, base_url
        self.html_dir, self.screenshot_dir = html_dir, screenshot_dir
        self.visits: dict[str, Visit] = {}

    def visit(self, page: str) -> Visit:
        if page not in self.visits:
            html = self.html_dir / f"{page}.html"
            assert html.is_file(), f"{page} is in {TOC_FILE.name} but {html.name} was not built"
            self.visits[page] = self._load(page, self.base_url + f"{page}.html")
        return self.visits[page]

    def visit_at(self, page: str, window: tuple[int, int]) -> Visit:
        """``page`` loaded afresh at another viewport size (the size is restored after)."""
        html = self.html_dir / f"{page}.html"
        assert html.is_file(), f"{page} is in {TOC_FILE.name} but {html.name} was not built"
        size = self.driver.get_window_size()
        inner = self.driver.execute_script("return [window.innerWidth, window.innerHeight];")
        self.driver.set_window_size(size["width"] - inner[0] + window[0],
                                    size["height"] - inner[1] + window[1])
        try:
            return self._load(f"{page}-{window[0]}px", self.base_url + f"{page}.html")
        finally:
            self.driver.set_window_size(size["width"], size["height"])

    def _load(self, page: str, url: str) -> Visit:
        driver = self.driver
        driver.get_log("browser")  # drop what earlier pages left
        driver.get(url)  # returns after the load event
        report = driver.execute_script(PAGE_REPORT_JS)
        time.sleep(0.3)  # late console messages (deferred scripts)
        errors = console_errors(driver.get_log("browser"))
        screenshot = self.screenshot_dir / f"{page}.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return Visit(url, report, errors, screenshot)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium under Selenium (skipped, with the reason, where there is none)."""
    with tempfile.TemporaryDirectory(prefix="h2q-chromium-") as profile_dir:
        driver = start_chromium(profile_dir)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def book(browser) -> Iterator[Book]:
    """The built book, served locally, in the browser."""
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip("book not built: run `make book` first")
    with serve(HTML_DIR) as base_url:
        yield Book(browser, base_url)


def _fail(page: str, visit: Visit, problems: list[str]) -> None:
    assert not problems, f"{page} ({visit.url}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_in_browser(page: str, book: Book) -> None:
    visit = book.visit(page)
    report = visit.report
    problems: list[str] = []
    if report["viewport"] != list(WINDOW):
        problems.append(f"viewport is {report['viewport']} px, not {list(WINDOW)}")
    if not report["title"]:
        problems.append("empty <title>")
    if report["mainText"] == 0:
        problems.append("main content is empty")
    if is_notebook_page(page):
        if report["tables"] < 1:
            problems.append("notebook page shows no <table>")
        if report["images"] < 1:
            problems.append("notebook page shows no <img> (figure)")
    if report["broken"]:
        problems.append(f"broken images: {report['broken']}")
    problems += visit.errors
    if not visit.screenshot.is_file() or visit.screenshot.stat().st_size == 0:
        problems.append(f"no screenshot written to {visit.screenshot}")
    _fail(page, visit, problems)


# --- reading quality (issue #23) ----------------------------------------------------------------


@pytest.mark.parametrize("page", toc_pages())
def test_no_table_or_figure_wider_than_its_container(page: str, book: Book) -> None:
    visit = book.visit(page)
    _fail(page, visit, [f"wider than its container at {WINDOW[0]} px: {w}"
                        for w in visit.report["wide"]])


@pytest.mark.parametrize("page", toc_pages())
def test_no_nan_none_dtype_or_cut_values(page: str, book: Book) -> None:
    visit = book.visit(page)
    _fail(page, visit, [f"shows {v}" for v in visit.report["badValues"]])


@pytest.mark.parametrize("page", toc_pages())
def test_no_code_cell_is_visible(page: str, book: Book) -> None:
    visit = book.visit(page)
    _fail(page, visit, [f"visible code cell: {c}" for c in visit.report["codeInputs"]])


def test_intro_verdict_is_in_the_first_800_px(book: Book) -> None:
    page = root_page()
    if page is None:
        pytest.skip(f"no root page in {TOC_FILE}")
    visit = book.visit(page)
    verdict = visit.report["verdict"]
    assert verdict is not None, f"{page}: no admonition titled 'Verdict'"
    assert verdict["firstLineBottom"] <= VERDICT_WITHIN_PX, (
        f"{page}: the verdict's first line ends at {verdict['firstLineBottom']} px "
        f"(title at {verdict['titleTop']} px), below the first {VERDICT_WITHIN_PX} px")


def test_intro_tables_fit_a_phone(book: Book) -> None:
    """The intro's claim table is what a reader opening a shared link on a phone sees first;
    at 390 px it must not scroll sideways."""
    page = root_page()
    if page is None:
        pytest.skip(f"no root page in {TOC_FILE}")
    visit = book.visit_at(page, PHONE)
    assert visit.report["viewport"][0] == PHONE[0], visit.report["viewport"]
    _fail(page, visit, [f"wider than its container at {PHONE[0]} px: {w}"
                        for w in visit.report["wide"]])


@pytest.mark.parametrize("page", toc_pages())
def test_a_table_wider_than_a_phone_says_it_scrolls(page: str, book: Book) -> None:
    """Issue #34: at 390 px half of 01's and 05's cells were off-screen with no cue. A table
    still wider than its box at a phone's width scrolls inside it under a visible line
    saying so (``scroll-cue.js`` marks the box, ``narrow-tables.css`` shows the line)."""
    visit = book.visit_at(page, PHONE)
    _fail(page, visit, [f"scrolls sideways at {PHONE[0]} px with no cue: {w}"
                        for w in visit.report["uncued"]])


# --- the checks themselves, on a page that breaks every rule ------------------------------------

BAD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head>
<body><main><article style="width: 600px">
<div class="admonition"><p class="admonition-title">Verdict</p>
<p style="margin-top: 1200px">late</p></div>
<div class="cell_input"><pre>print("visible code")</pre></div>
<div class="cell_output"><pre>a    1.0\nName: x, dtype: float64</pre></div>
<div><table style="width: 900px"><tr><td>NaN</td><td>cut value\u2026</td><td>ok</td></tr>
</table></div><img src="missing.png" alt="missing figure">
<style>.h2q-scrolls::before { content: "scrolls"; }</style>
<div style="overflow-x: auto; width: 300px"><table style="width: 900px"><tr><td>no cue</td>
</tr></table></div>
<div class="h2q-scrolls" style="overflow-x: auto; width: 300px"><table style="width: 900px">
<tr><td>cued</td></tr></table></div>
<script>console.error("broken on purpose"); undefinedFunction();</script>
</article></main></body></html>"""


def test_checks_catch_a_page_that_breaks_them(browser, tmp_path: Path) -> None:
    (tmp_path / "bad.html").write_text(BAD_PAGE, encoding="utf-8")
    with serve(tmp_path) as base_url:
        visit = Book(browser, base_url, tmp_path, tmp_path / "shots").visit("bad")
    report = visit.report
    assert report["viewport"] == list(WINDOW)
    assert any("table" in w and "900 px" in w for w in report["wide"]), report["wide"]
    assert report["uncued"] == ['table "no cue": 900 px in 300 px'], report["uncued"]
    assert {'cell "NaN"', 'cell "cut value\u2026"', 'output "Name: x, dtype: float64"'} <= set(
        report["badValues"]), report["badValues"]
    assert report["codeInputs"] == ['print("visible code")']
    assert report["verdict"]["firstLineBottom"] > VERDICT_WITHIN_PX
    assert report["broken"] and report["broken"][0].endswith("/missing.png")
    joined = "\n".join(visit.errors)
    assert "broken on purpose" in joined and "undefinedFunction" in joined
    assert "missing.png" in joined  # the failed local fetch
    assert visit.screenshot.stat().st_size > 0


def test_console_errors_ignore_other_hosts_and_known_noise() -> None:
    entries = [
        {"level": "SEVERE", "source": "network",
         "message": "https://cdn.example.org/x.js - Failed to load resource"},
        {"level": "SEVERE", "source": "network",
         "message": "http://127.0.0.1:1/favicon.ico - Failed to load resource: 404"},
        {"level": "SEVERE", "source": "javascript", "message": "http://127.0.0.1:1/a.html 3:1 "
         "Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"},
        {"level": "WARNING", "source": "console-api", "message": "a warning"},
        {"level": "SEVERE", "source": "console-api", "message": "http://127.0.0.1:1/a.js 1:2 "
         '"real error"'},
    ]
    assert console_errors(entries) == ['console-api: http://127.0.0.1:1/a.js 1:2 "real error"']
