"""A minimal backend for chatgate's chat widget: one demo page and one token endpoint.

Standard library only. Run it next to a gateway whose ``cors.allow_origins`` lists this page's
origin (``http://localhost:8000`` below; behind a proxy or on another name, pass ``--origin``)::

    CHATGATE_URL=http://127.0.0.1:8080 CHATGATE_API_KEY=cg-... \\
        python examples/widget_backend.py --port 8000

then open http://localhost:8000/. The page embeds ``<gateway>/widget.js`` under a strict
Content-Security-Policy (no inline script or style anywhere). The widget asks ``POST /token``
for a browser token; this server mints one with its virtual key — the key itself never reaches
the browser — bound to the page's origin, to one model, to a ``max_tokens`` cap, a request count
and a short lifetime, and passes chatgate's answer through as it is. It hands tokens only to
requests whose ``Origin`` header is this site's origin: a page of another site cannot obtain one
on a visitor's behalf.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Settings", "demo_csp", "demo_page", "main", "make_server", "mint_token"]


@dataclass(frozen=True)
class Settings:
    gateway: str
    """The gateway's base URL, e.g. ``http://127.0.0.1:8080`` (no ``/v1``)."""
    api_key: str
    """A chatgate virtual key (``cg-…``): stays on this server."""
    model: str = "smollm2-135m-instruct"
    origin: str | None = None
    """This site's public origin (``https://app.example``); default: ``http://localhost:<port>``.
    Never taken from the request: its ``Host`` header is whatever the client says."""
    ttl: int = 600
    max_tokens: int = 512
    max_requests: int = 50


def gateway_origin(gateway: str) -> str:
    parts = urlsplit(gateway)
    return f"{parts.scheme}://{parts.netloc}"


def demo_csp(gateway: str) -> str:
    """A strict policy: scripts only from the gateway, no inline code or style anywhere."""
    origin = gateway_origin(gateway)
    return (
        f"default-src 'none'; script-src {origin}; connect-src 'self' {origin}; "
        "style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


DEMO_CSS = """\
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
code { background: #f1f3f5; padding: 0 .25em; border-radius: 4px; }
"""


def demo_page(gateway: str, model: str) -> str:
    """The host page: any page of your site, plus the one script tag."""
    src = html.escape(f"{gateway.rstrip('/')}/widget.js", quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>chatgate widget demo</title>
  <link rel="stylesheet" href="/demo.css">
</head>
<body>
  <h1>chatgate widget demo</h1>
  <p>The chat bubble in the corner is <code>{src}</code>. It gets a short-lived token from
  <code>POST /token</code> on this server and streams answers from the gateway.</p>
  <script src="{src}" data-token-endpoint="/token" data-model="{html.escape(model, quote=True)}"
    data-title="Ask us anything" data-greeting="Hello! How can I help?" async></script>
</body>
</html>
"""


def mint_token(settings: Settings, origin: str) -> tuple[int, bytes]:
    """``POST <gateway>/v1/tokens`` with the key: chatgate's status and JSON body."""
    spec = {
        "models": [settings.model],
        "origin": origin,
        "ttl": settings.ttl,
        "max_tokens": settings.max_tokens,
        "max_requests": settings.max_requests,
    }
    request = urllib.request.Request(
        f"{settings.gateway.rstrip('/')}/v1/tokens",
        data=json.dumps(spec).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        body = {"error": {"message": f"The gateway is unreachable: {error}", "type": "api_error"}}
        return 502, json.dumps(body).encode()


def make_server(settings: Settings, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    page_csp = demo_csp(settings.gateway)
    origin = (settings.origin or "").rstrip("/")  # set below once the port is known

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
            self._send(status, body.encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                page = demo_page(settings.gateway, settings.model).encode()
                self._send(200, page, "text/html; charset=utf-8", Content_Security_Policy=page_csp)
            elif path == "/demo.css":
                self._send(200, DEMO_CSS.encode(), "text/css; charset=utf-8")
            else:
                self._error(404, "Not found.")

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/token":
                self._error(404, "Not found.")
                return
            if self.headers.get("Origin") != origin:
                # Another site's page may not obtain tokens on this user's behalf. Browsers send
                # `Origin` with every POST (same-origin ones too): a request without it is not
                # from a page of this site.
                self._error(403, "Tokens are only handed to this site's own pages.")
                return
            # A real app checks its own user session here (its session cookie: the widget sends
            # same-origin credentials) and refuses visitors it does not want to pay for: e.g.
            #     user = sessions.get(self.headers.get("Cookie")); if user is None: 401
            # and may pick per-user `max_tokens`, `max_requests` and `ttl`.
            status, body = mint_token(settings, origin)
            self._send(status, body, "application/json", Cache_Control="no-store")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet; a real app logs through its own logger

    server = ThreadingHTTPServer((host, port), Handler)
    origin = origin or f"http://localhost:{server.server_address[1]}"
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default=os.environ.get("CHATGATE_MODEL", Settings.model))
    parser.add_argument(
        "--origin",
        default=None,
        help="this site's public origin (default: http://localhost:PORT); token requests "
        "from any other origin are refused",
    )
    parser.add_argument("--ttl", type=int, default=Settings.ttl, help="token lifetime (s)")
    args = parser.parse_args(argv)
    settings = Settings(
        gateway=os.environ.get("CHATGATE_URL", "http://127.0.0.1:8080"),
        api_key=os.environ["CHATGATE_API_KEY"],
        model=args.model,
        origin=args.origin,
        ttl=args.ttl,
    )
    server = make_server(settings, args.port, args.host)
    print(f"widget demo on http://localhost:{args.port}/ (gateway {settings.gateway})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
