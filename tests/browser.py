"""Real-browser test support: Debian's Chromium driven by Playwright for Python.

Playwright's wheel carries its own driver (Node) and needs no browser download: it launches the
system Chromium (`scripts/test` installs it) through ``executable_path``. The sync API cannot run
inside an event loop, so browser tests are plain (not anyio) tests.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

__all__ = [
    "CSP_PROBE",
    "HostPage",
    "PageWatch",
    "chromium_path",
    "launch",
    "lengths_while",
    "new_page",
    "serve_pages",
]

CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""
"""Runs before any page script (Playwright injects it past the page's CSP) and records every
Content-Security-Policy violation the page causes."""


def chromium_path() -> str:
    # Debian's /usr/bin/chromium is a shell wrapper; the binary behind it starts the same way
    # without the wrapper's noise.
    direct = Path("/usr/lib/chromium/chromium")
    if direct.exists():
        return str(direct)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed for the browser tests (scripts/test installs it)"
    return found


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        args=["--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )


@dataclass
class PageWatch:
    """What a page said on its console, threw, and violated (CSP), for assertions."""

    page: Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("() => window.__csp || []"))

    def clean(self) -> None:
        """No uncaught errors and no CSP violations."""
        assert not self.errors, self.errors
        assert not self.csp_violations(), self.csp_violations()


def new_page(context: BrowserContext) -> PageWatch:
    context.add_init_script(CSP_PROBE)
    page = context.new_page()
    watch = PageWatch(page)

    def on_console(message: ConsoleMessage) -> None:
        watch.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    return watch


def lengths_while(page: Page, read: Callable[[], int], until: Callable[[], bool]) -> list[int]:
    """Distinct values of ``read()`` sampled as fast as the page answers until ``until()`` —
    a text that streams in shows many; one that lands at once shows one or two."""
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = read()
        if not seen or seen[-1] != value:
            seen.append(value)
        if until():
            return seen
        page.wait_for_timeout(20)  # sampling interval of an observation, not a synchronisation
    raise AssertionError(f"never finished; lengths seen: {seen}")


@dataclass
class HostPage:
    """One page a test host serves: body, content type and extra headers."""

    body: str | bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[[bytes], tuple[int, dict[str, Any] | bytes]] | None = None


@contextmanager
def serve_pages(pages: dict[str, HostPage], host: str = "localhost") -> Iterator[str]:
    """A throwaway web server for host pages of another origin (``http://localhost:P`` while
    the gateway is ``http://127.0.0.1:Q``); yields its origin."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body_in: bytes) -> None:
            page = pages.get(self.path.split("?")[0])
            if page is None:
                self.send_error(404)
                return
            status, headers = 200, {"content-type": page.content_type, **page.headers}
            body = page.body
            if page.handler is not None:
                status, result = page.handler(body_in)
                body = result if isinstance(result, bytes) else __import__("json").dumps(result)
                headers["content-type"] = "application/json"
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self._answer(self.rfile.read(length))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
