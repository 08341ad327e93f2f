"""Browser pages: the playground (``/playground``), the dashboard (``/dashboard``) and the
embeddable widget (``/widget.js``).

All are static files in the package (no CDN, no build step at run time). The widget is one
classic script: the vendored marked and DOMPurify UMD builds, each wrapped in a function so they
never touch the host page's globals, then the shared chat core and the widget itself —
concatenated once, at start-up.
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

__all__ = ["DASHBOARD_CSP", "PLAYGROUND_CSP", "Pages", "widget_bundle"]

PLAYGROUND_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The playground runs no inline code and loads nothing from elsewhere; model output can load
no remote image (a classic way to exfiltrate a conversation)."""

DASHBOARD_CSP = PLAYGROUND_CSP
"""The dashboard shows names from the request log (a model name is whatever a client sent): it
builds its DOM from text only, and this policy stops any markup that slipped through from running
script on the gateway's origin (where the playground may keep a key)."""

_STATIC = resources.files("chatgate.api") / "static"


def _read(name: str) -> str:
    text = (_STATIC / name).read_text(encoding="utf-8")
    # Source maps are not shipped: drop the comments that point browsers at them.
    return "\n".join(line for line in text.splitlines() if "sourceMappingURL=" not in line)


def _umd(name: str) -> str:
    """A UMD build run as CommonJS inside a function: its export, no globals."""
    return (
        "(function () { var module = { exports: {} }, exports = module.exports, define;\n"
        f"{_read(name)}\n;return module.exports; }})()"
    )


def widget_bundle() -> bytes:
    return (
        "/*! chatgate widget: marked 18.3.0 (MIT) and DOMPurify 3.5.0 (MPL-2.0 OR Apache-2.0)"
        " are included; their licences are in the chatgate package (api/static/vendor). */\n"
        "(function () {\n'use strict';\n"
        f"const markedLib = {_umd('vendor/marked.umd.js')};\n"
        f"const purifyLib = {_umd('vendor/purify.min.js')};\n"
        f"{_read('chat-core.js')}\n"
        "const core = chatgateCore(markedLib, purifyLib);\n"
        f"{_read('widget.js')}\n"
        "})();\n"
    ).encode()


class Pages:
    def __init__(self, embedding_models: list[str]) -> None:
        # The model picker leaves out embedding models (/v1/models lists them beside chat models).
        page = (_STATIC / "playground.html").read_text(encoding="utf-8")
        names = html.escape(",".join(embedding_models), quote=True)
        self._playground = page.replace("{{embedding_models}}", names).encode()
        self._dashboard = (_STATIC / "dashboard.html").read_bytes()
        self._widget = widget_bundle()
        self._widget_etag = '"' + hashlib.sha256(self._widget).hexdigest()[:32] + '"'

    async def root(self, request: Request) -> Response:
        return RedirectResponse("/playground", status_code=307)

    async def playground(self, request: Request) -> Response:
        return _html(self._playground, PLAYGROUND_CSP)

    async def dashboard(self, request: Request) -> Response:
        return _html(self._dashboard, DASHBOARD_CSP)

    async def widget(self, request: Request) -> Response:
        headers = {
            "etag": self._widget_etag,
            "cache-control": "public, max-age=300",
            "x-content-type-options": "nosniff",
            # Host pages that isolate themselves (COEP) may still load it.
            "cross-origin-resource-policy": "cross-origin",
        }
        if request.headers.get("if-none-match") == self._widget_etag:
            return Response(status_code=304, headers=headers)
        return Response(self._widget, media_type="text/javascript; charset=utf-8", headers=headers)


def _html(page: bytes, policy: str) -> Response:
    headers = {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }
    return Response(page, media_type="text/html; charset=utf-8", headers=headers)
