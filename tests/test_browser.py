"""Open every page of the built book in a real headless Chromium and check what a reader sees.

The built HTML (``_build/html``) is served on 127.0.0.1 and each page in ``_toc.yml`` is loaded
through the Chrome DevTools Protocol (CDP). Chromium is driven over ``--remote-debugging-pipe``
(NUL-separated JSON on file descriptors 3 and 4), so no websocket package and no open debugging
port are needed. Per page the test checks that it loads with a title and non-empty main content,
that notebook pages show at least one table and one image, that no image is broken, and that
the console shows no errors (failed fetches to other hosts are ignored: there is no network).
A screenshot of each page is written to ``_build/screenshots/<page>.png``.

``H2Q_BOOK_HTML`` and ``H2Q_BOOK_TOC`` point the test at another built book (relative paths
resolve against the repository root).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE_TIMEOUT_S = 20.0
# a real browser over the built HTML: part of `make test-all` (CI), not `make test`
pytestmark = [pytest.mark.slow, pytest.mark.browser]

WINDOW = (1280, 2000)
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}

# Console noise from the jupyter-book 1.x toolchain itself, the same on every page of any book;
# everything else fails the test.
# - Sphinx 7.4 emits inline <script> bodies added by extensions twice (fixed upstream in
#   sphinx-doc/sphinx PR 13402, Sphinx 8.2), so sphinx-thebe's `const THEBE_JS_URL` is
#   declared twice. Thebe is not used by this book.
# - pydata-sphinx-theme logs this once in a browser profile with no stored light/dark mode.
KNOWN_TOOLCHAIN_NOISE = (
    re.compile(r"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"),
    re.compile(r"console\.error: Got invalid theme mode: \. Resetting to auto\."),
)


def _from_env(name: str, default: str) -> Path:
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else REPO_ROOT / path


HTML_DIR = _from_env("H2Q_BOOK_HTML", "_build/html")
TOC_FILE = _from_env("H2Q_BOOK_TOC", "_toc.yml")
SCREENSHOT_DIR = HTML_DIR.parent / "screenshots"


def _toc_files(entries: list[dict[str, Any]]) -> Iterator[str]:
    """``file:`` entries of a jb-book TOC, depth first (parts, chapters and sections)."""
    for entry in entries:
        if "file" in entry:
            yield str(entry["file"])
        for key in ("parts", "chapters", "sections"):
            yield from _toc_files(entry.get(key) or [])


def toc_pages() -> list[str]:
    """The root page and every ``file:`` entry, without extension, relative to ``book/``."""
    if not TOC_FILE.is_file():
        return []
    toc = yaml.safe_load(TOC_FILE.read_text(encoding="utf-8")) or {}
    pages = [str(toc["root"])] if "root" in toc else []
    pages += _toc_files([toc])
    return [Path(page).with_suffix("").as_posix() for page in pages]


def is_notebook_page(page: str) -> bool:
    return page.startswith("notebooks/0")


class CdpPipe:
    """A minimal Chrome DevTools Protocol client over Chromium's ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile_dir: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds() -> None:
            # Chromium reads commands from fd 3 and writes replies to fd 4. Duplicate above 10
            # first so that the two dup2 calls cannot overwrite each other.
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        args = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank",
        ]
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            close_fds=False, preexec_fn=child_fds,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def stderr_tail(self, chars: int = 2_000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-chars:]

    def _read_message(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe:\n" + self.stderr_tail())
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = PAGE_TIMEOUT_S) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._to_chrome, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline - time.monotonic())
            if reply is None:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = PAGE_TIMEOUT_S) -> None:
        """Wait until the event ``method`` has arrived for ``session``."""
        deadline = time.monotonic() + timeout
        while not any(e["method"] == method and e.get("sessionId") == session
                      for e in self.events):
            event = self._read_message(deadline - time.monotonic())
            if event is None:
                raise TimeoutError(f"{method} did not arrive within {timeout} s")
            if "method" in event:
                self.events.append(event)

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (event := self._read_message(max(0.0, deadline - time.monotonic()))) is not None:
            if "method" in event:
                self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        self._stderr.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free local port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[CdpPipe, str]]:
    """Headless Chromium and the base URL of the built book, served locally."""
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip("book not built: run `make book` first")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not found (install the chromium package)")
    with tempfile.TemporaryDirectory(prefix="h2q-chromium-") as profile_dir:
        # Start Chromium before the server thread: the child setup runs between fork and exec.
        cdp = CdpPipe(binary, profile_dir)
        try:
            cdp.send("Browser.getVersion", timeout=60)
        except (RuntimeError, TimeoutError) as err:
            cdp.close()
            pytest.fail(f"could not start headless Chromium: {err}\n{cdp.stderr_tail()}")
        try:
            with serve(HTML_DIR) as base_url:
                yield cdp, base_url
        finally:
            cdp.close()


# Runs in the page after the load event: make lazy images load, wait for every image to settle,
# then describe the page.
PAGE_REPORT_JS = """
(async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = 'eager'; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 10000);
  })));
  const main = document.querySelector('main') || document.querySelector('article')
    || document.body;
  return JSON.stringify({
    title: document.title.trim(),
    mainText: (main.innerText || '').trim().length,
    tables: main.querySelectorAll('table').length,
    images: main.querySelectorAll('img').length,
    broken: images.filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.currentSrc || img.getAttribute('src') || '(no src)'),
  });
})()
"""


def _is_local(url: str | None) -> bool:
    return not url or urlsplit(url).hostname in LOCAL_HOSTS or url.startswith("data:")


def console_errors(events: list[dict[str, Any]], session: str) -> list[str]:
    """Console errors, uncaught exceptions and error log entries of one page session.

    Failed network fetches to hosts other than the local server are ignored (no network here).
    """
    errors: list[str] = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught exception: {description} ({details.get('url', '')})")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") != "error":
                continue
            url = entry.get("url")
            if entry.get("source") == "network" and not _is_local(url):
                continue
            if url and urlsplit(url).path == "/favicon.ico":
                continue
            errors.append(f"log {entry.get('source')}: {entry.get('text')} ({url or ''})")
    return [e for e in errors if not any(p.search(e) for p in KNOWN_TOOLCHAIN_NOISE)]


def load_page(cdp: CdpPipe, url: str, screenshot: Path) -> tuple[dict[str, Any], list[str]]:
    """Open ``url`` in a fresh tab; return the page report and its console errors."""
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send("Emulation.setDeviceMetricsOverride", {
            "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False,
        }, session=session)
        navigation = cdp.send("Page.navigate", {"url": url}, session=session)
        if navigation.get("errorText"):
            raise AssertionError(f"{url} did not load: {navigation['errorText']}")
        cdp.wait_for("Page.loadEventFired", session)
        result = cdp.send("Runtime.evaluate", {
            "expression": PAGE_REPORT_JS, "awaitPromise": True, "returnByValue": True,
        }, session=session)
        if "exceptionDetails" in result:
            raise AssertionError(f"page report script failed: {result['exceptionDetails']}")
        report = json.loads(result["result"]["value"])
        cdp.drain(0.3)  # late console messages (deferred scripts)
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return report, console_errors(cdp.events, session)
    finally:
        cdp.send("Target.closeTarget", {"targetId": target})
        cdp.events = [e for e in cdp.events if e.get("sessionId") != session]


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_in_browser(page: str, browser: tuple[CdpPipe, str]) -> None:
    cdp, book_server = browser
    html = HTML_DIR / f"{page}.html"
    assert html.is_file(), f"{page} is in {TOC_FILE.name} but {html.name} was not built"
    screenshot = SCREENSHOT_DIR / f"{page}.png"
    report, errors = load_page(cdp, book_server + f"{page}.html", screenshot)

    problems: list[str] = []
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
    problems += errors
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        problems.append(f"no screenshot written to {screenshot}")
    assert not problems, f"{page} ({book_server}{page}.html):\n  " + "\n  ".join(problems)
