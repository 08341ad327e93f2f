"""Optional OpenTelemetry traces: a span per request with child spans per stage, exported to an
OTLP/HTTP receiver (a small test server decoding the protobuf)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fake_upstream import FakeUpstream
from tests.support import post_json, start_gateway


class Receiver:
    """An OTLP/HTTP traces endpoint keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.port = 0
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            app = web.Application()
            app.router.add_post("/v1/traces", self._traces)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        started.wait(10)

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.loop.call_soon_threadsafe(server.loop.stop)


def test_a_span_per_request_and_per_stage(
    receiver: Receiver, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = (
        f"observability: {{otel_endpoint: 'http://127.0.0.1:{receiver.port}/v1/traces'}}\n"
        f"models:\n  - {{name: echo, provider: openai_compat, base_url: '{upstream.base_url}'}}\n"
    )
    gateway = start_gateway(tmp_path, config=config, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        body = {"model": "echo", "messages": [{"role": "user", "content": "trace me"}]}
        answer = post_json(f"{gateway.base_url}/chat/completions", body)
        assert answer.status == 200
        deadline = time.monotonic() + 15
        while not any(s.name == "chatgate.chat.completions" for s in receiver.spans):
            assert time.monotonic() < deadline, "no request span arrived"
            time.sleep(0.05)  # polling the receiver, bounded
    finally:
        gateway.stop()
    (root,) = [s for s in receiver.spans if s.name == "chatgate.chat.completions"]
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert attributes["chatgate.request_id"] == answer.headers["x-request-id"]
    stages = {s.name: s for s in receiver.spans if s.name.startswith("chatgate.stage.")}
    assert {"chatgate.stage.access", "chatgate.stage.rate_limit", "chatgate.stage.cache"} <= set(
        stages
    )
    assert all(s.trace_id == root.trace_id for s in stages.values())
    assert stages["chatgate.stage.access"].parent_span_id == root.span_id
