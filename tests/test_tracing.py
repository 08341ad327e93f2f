"""Optional OpenTelemetry over the wire: a running `chatgate serve` exports its spans (one per
operation, a child per stage) and its GenAI metrics to an OTLP/HTTP receiver (a small test server
decoding the protobuf). What the spans and metrics hold is tested in tests/test_telemetry.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fake_upstream import FakeUpstream
from tests.support import post_json, start_gateway
from tests.threaded_app import serve_in_thread


class Receiver:
    """An OTLP/HTTP traces endpoint keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: set[str] = set()
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        server = serve_in_thread(app)
        self.port, self.loop = server.port, server.loop

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_metrics:
            for scope in resource.scope_metrics:
                self.metrics.update(m.name for m in scope.metrics)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.loop.call_soon_threadsafe(server.loop.stop)


def test_spans_and_genai_metrics_reach_an_otlp_receiver(
    receiver: Receiver, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = (
        f"observability: {{otel_endpoint: 'http://127.0.0.1:{receiver.port}/v1/traces',"
        " otel_metrics_interval: 0.2}\n"
        f"models:\n  - {{name: echo, provider: openai_compat, base_url: '{upstream.base_url}'}}\n"
    )
    gateway = start_gateway(tmp_path, config=config, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        body = {"model": "echo", "messages": [{"role": "user", "content": "trace me"}]}
        answer = post_json(f"{gateway.base_url}/chat/completions", body)
        assert answer.status == 200
        deadline = time.monotonic() + 15
        wanted = {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
        while not (
            any(s.name == "chat echo" for s in receiver.spans) and wanted <= receiver.metrics
        ):
            assert time.monotonic() < deadline, "no span or metrics arrived"
            time.sleep(0.05)  # polling the receiver, bounded
    finally:
        gateway.stop()
    (root,) = [s for s in receiver.spans if s.name == "chat echo"]
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert attributes["chatgate.request_id"] == answer.headers["x-request-id"]
    assert attributes["gen_ai.operation.name"] == "chat"
    stages = {s.name: s for s in receiver.spans if s.name.startswith("chatgate.stage.")}
    assert {"chatgate.stage.access", "chatgate.stage.rate_limit", "chatgate.stage.cache"} <= set(
        stages
    )
    assert all(s.trace_id == root.trace_id for s in stages.values())
    assert stages["chatgate.stage.access"].parent_span_id == root.span_id
