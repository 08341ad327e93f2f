"""Test support: a live chatgate server in a subprocess, and OpenAI schema validation."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import openai
import referencing

DATA = Path(__file__).parent / "data"
URN = "urn:openai-openapi"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    context: ssl.SSLContext | None = None,
) -> RawResponse:
    """One plain HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return RawResponse(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return RawResponse(
            error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
        )


def post_json(url: str, payload: Any, **headers: str) -> RawResponse:
    return raw(
        url,
        method="POST",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


@cache
def _registry() -> referencing.Registry[Any]:
    document = json.loads((DATA / "openai-openapi-subset.json").read_text())
    resource = referencing.Resource.from_contents(
        document, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(URN, resource)
    return registry


def assert_openai_shape(instance: Any, component: str) -> None:
    """Validate ``instance`` against OpenAI's own schema for ``component``."""
    schema = {"$ref": f"{URN}#/components/schemas/{component}"}
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MASTER = "master-key-for-tests-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-0123456789"

STARTED_LOGS: list[Path] = []
"""Every gateway log of this test session (scanned for secrets at the end)."""

SECRET_PATTERNS = (
    re.compile(r"cg-[A-Za-z0-9_-]{43}"),  # virtual key secrets
    re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),  # browser tokens
)


@dataclass
class Gateway:
    """A ``chatgate serve`` subprocess on a free port."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    scheme: str = "http"
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_with(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains ``text`` (lines are written by a background thread)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the log file, bounded
        return log

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gateway(
    tmp: Path,
    config: str | None = None,
    *,
    env: dict[str, str] | None = None,
    ready: bool = True,
    args: tuple[str, ...] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> Gateway:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "chatgate", "serve", "--port", str(port), *args]
    if config is not None:
        path = tmp / "chatgate.yaml"
        path.write_text(config)
        command += ["--config", str(path)]
    log_path = tmp / f"chatgate-{port}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    child_env["CHATGATE_DATA_DIR"] = str(tmp / "data")
    child_env.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env)
    scheme = "https" if ssl_context is not None else "http"
    gateway = Gateway(process, port, log_path, scheme, ssl_context)
    STARTED_LOGS.append(log_path)
    if ready:
        wait_healthy(gateway)
    return gateway


def wait_healthy(gateway: Gateway, timeout: float = 60.0) -> None:
    """Poll ``/health`` until it answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"chatgate exited early:\n{gateway.log()}")
        try:
            if raw(f"{gateway.url}/health", context=gateway.ssl_context).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)  # polling for start-up, not synchronising on behaviour
    gateway.stop()
    raise RuntimeError(f"chatgate did not become healthy:\n{gateway.log()}")


def sse_events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (``[DONE]`` included)."""
    return [
        line[len("data: ") :] for line in body.decode().split("\n") if line.startswith("data: ")
    ]


def key_client(gateway: Gateway, owner: str | None = None) -> openai.OpenAI:
    """The official SDK on a new virtual key (of ``owner``, if given); needs the master key."""
    spec: dict[str, Any] = {"name": secrets.token_hex(3)}
    if owner:
        spec["owner"] = owner
    created = post_json(f"{gateway.url}/admin/keys", spec, Authorization=f"Bearer {MASTER}")
    assert created.status == 201, created.body
    return openai.OpenAI(base_url=gateway.base_url, api_key=created.json()["secret"], max_retries=0)
