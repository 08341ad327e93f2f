"""OpenTelemetry in the GenAI semantic conventions, read from in-memory exporters: one span per
operation (chat, embeddings, ...) named ``{operation} {model}`` with the request's and response's
``gen_ai.*`` attributes and a child span per stage it passed, and the GenAI metrics —
``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.server.time_to_first_token``, ``gen_ai.server.time_per_output_token``.

The app runs in this process (so the exporters can be read) and is called over HTTP with the
official SDK (through Starlette's test client as its HTTP client)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from chatgate.api import create_app
from chatgate.config import Settings
from chatgate.gateway.telemetry import Telemetry
from tests.fake_upstream import FakeUpstream


@dataclass
class Traced:
    client: openai.OpenAI
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans.get_finished_spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans.get_finished_spans()]
        return found[0]

    def stages(self, root: ReadableSpan) -> list[str]:
        """The stage spans under ``root``, outermost first (each stage wraps the next)."""
        assert root.context is not None
        names, parent = [], root.context.span_id
        spans = self.spans.get_finished_spans()
        while child := [s for s in spans if s.parent is not None and s.parent.span_id == parent]:
            names.append(child[0].name)
            assert child[0].context is not None
            parent = child[0].context.span_id
        return names

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
        ]


@pytest.fixture
def traced(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Traced]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(
        tracer_provider.get_tracer("chatgate"),
        meter_provider.get_meter("chatgate"),
        [tracer_provider, meter_provider],
    )
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "models": [
                {"name": "echo", "provider": "openai_compat", "base_url": upstream.base_url}
            ],
            "embedding_models": [
                {"name": name, "provider": "openai_compat", "base_url": upstream.base_url}
                for name in ("text-embedding-3-small", "one-a-minute")
            ],
            "limits": {"models": {"one-a-minute": {"rpm": 1}}},
        }
    )
    with TestClient(create_app(settings, telemetry=telemetry)) as http:
        client = openai.OpenAI(
            base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0
        )
        yield Traced(client, spans, reader)


def test_a_chat_completion_is_one_genai_span_with_its_stages_and_metrics(traced: Traced) -> None:
    reply = traced.client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "count these words please"}],
        temperature=0.5,
        max_tokens=40,
    )
    assert reply.usage is not None
    span = traced.span("chat echo")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "echo"
    assert attributes["gen_ai.response.model"] == "echo"
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.request.max_tokens"] == 40
    assert attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert traced.stages(span) == [
        "chatgate.stage.access",
        "chatgate.stage.guard",
        "chatgate.stage.knowledge",
        "chatgate.stage.context",
        "chatgate.stage.rate_limit",
        "chatgate.stage.budget",
        "chatgate.stage.deadline",
        "chatgate.stage.cache",
    ]
    (duration,) = traced.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.response.model"] == "echo"
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in traced.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": reply.usage.prompt_tokens, "output": reply.usage.completion_tokens}


def test_a_stream_ends_its_span_when_it_ends_and_times_its_tokens(traced: Traced) -> None:
    stream = traced.client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three four five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
    assert usage is not None and usage.completion_tokens > 1
    span = traced.span("chat echo")
    # The usage arrives in the last chunk: a span ended when the stream began would not have it.
    assert dict(span.attributes or {})["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert dict(span.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    (first,) = traced.points("gen_ai.server.time_to_first_token")
    (per_token,) = traced.points("gen_ai.server.time_per_output_token")
    assert first.count == 1 and per_token.count == 1


def test_embeddings_are_an_operation_of_their_own(traced: Traced) -> None:
    answer = traced.client.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"]
    )
    span = traced.span("embeddings text-embedding-3-small")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert traced.stages(span) == [  # chat's own stages (guards, cache, ...) are not there
        "chatgate.stage.access",
        "chatgate.stage.rate_limit",
        "chatgate.stage.budget",
        "chatgate.stage.deadline",
    ]
    kinds = {p.attributes["gen_ai.token.type"] for p in traced.points("gen_ai.client.token.usage")}
    assert kinds == {"input"}
    assert not traced.points("gen_ai.server.time_to_first_token")


def test_a_refused_operation_records_its_error_type(traced: Traced) -> None:
    traced.client.embeddings.create(model="one-a-minute", input="x")
    with pytest.raises(openai.RateLimitError):
        traced.client.embeddings.create(model="one-a-minute", input="x")
    refused = [
        s for s in traced.spans.get_finished_spans() if (s.attributes or {}).get("error.type")
    ]
    assert [dict(s.attributes or {})["error.type"] for s in refused] == ["rate_limit_error"]
    durations = traced.points("gen_ai.client.operation.duration")
    assert sorted(str(p.attributes.get("error.type")) for p in durations) == [
        "None",
        "rate_limit_error",
    ]
