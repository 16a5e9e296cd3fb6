"""Real headless Chromium (Debian's, driven by Playwright) against a live control plane.

Chromium is never downloaded: the tests use the system binary. Without it (or without the
dashboard's npm libraries) the tests skip locally but fail when ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VENDOR_FILES = ("marked/lib/marked.esm.js", "dompurify/dist/purify.es.mjs",
                "@highlightjs/cdn-assets/es/highlight.min.js", "yaml/browser/index.js",
                "chart.js/dist/chart.umd.min.js")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread until
    it stops, which would break every later test that calls ``asyncio.run``."""
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")
    missing = [f for f in VENDOR_FILES if not (ROOT / "static_ui" / "node_modules" / f).exists()]
    if missing:
        _unavailable(f"the dashboard's browser libraries are not installed (make ui): {', '.join(missing)}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@dataclass
class PageProblems:
    """Everything that would show up red in DevTools."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    allowed_http: set[tuple[int, str]] = field(default_factory=set)
    aborted: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.console + self.page_errors + self.failed + self.http_errors


class Dashboard:
    """A page on the dashboard plus the problems it has logged, and screenshot helpers."""

    def __init__(self, page: Any, base_url: str, name: str) -> None:
        self.page = page
        self.url = base_url
        self.name = name
        self.problems = PageProblems()
        self.requests: list[Any] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.page_errors.append(f"pageerror: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("request", lambda req: self.requests.append(req))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx/5xx response; those a test expects (and allows) are not problems.
        url = (message.location or {}).get("url", "").replace(self.url, "")
        status = re.search(r"status of (\d{3})", message.text)
        if status and any(int(status.group(1)) == code and url.startswith(prefix)
                          for code, prefix in self.problems.allowed_http):
            return
        self.problems.console.append(f"console.error: {message.text} @ {message.location}")

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # ERR_ABORTED is the browser cancelling a request itself: a reload, or a view that no
        # longer needs a listing or a stream. Tolerated for reads and the chat stream only;
        # an aborted upload, launch or delete is still a failure.
        if "ERR_ABORTED" in failure and (request.method == "GET" or request.url.endswith("/chat")):
            self.problems.aborted.append(f"{request.method} {request.url}")
            return
        self.problems.failed.append(f"request failed: {request.method} {request.url} ({failure})")

    def _response(self, response: Any) -> None:
        if response.status < 400:
            return
        path = response.url.replace(self.url, "")
        if any(response.status == status and path.startswith(prefix) for status, prefix in self.problems.allowed_http):
            return
        self.problems.http_errors.append(f"HTTP {response.status}: {response.request.method} {path}")

    def send(self, message: str) -> None:
        """Type a message into the chat and wait until its turn has ended."""
        from playwright.sync_api import expect

        done_before = self.page.locator(".turn-footer.has-result").count()
        self.page.fill(".composer-input", message)
        self.page.keyboard.press("Enter")
        self.page.locator(".turn-footer.has-result").nth(done_before).wait_for()
        expect(self.page.locator(".composer-send")).to_be_enabled()

    def shot(self, step: str) -> Path:
        path = ARTIFACTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path))
        return path

    def assert_clean(self) -> None:
        problems = self.problems.all()
        assert not problems, "the page logged problems:\n" + "\n".join(problems)


@pytest.fixture()
def dashboard(request: pytest.FixtureRequest, browser: Any, control_plane: Any) -> Iterator[Dashboard]:
    """A fresh browser context (so a fresh sessionStorage) at laptop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    context.set_default_timeout(60_000)
    page = context.new_page()
    board = Dashboard(page, control_plane.url, request.node.name.removeprefix("test_"))
    yield board
    context.close()
