"""Optional OpenTelemetry traces: a span per request and a child span per pipeline stage,
exported over OTLP/HTTP. Installed with the ``otel`` extra; off unless an endpoint is set."""

from __future__ import annotations

import importlib
from typing import Any

from chatgate.config import ConfigError, ObservabilityConfig
from chatgate.gateway.context import ChatContext, Next, Outcome, Stage

__all__ = ["Tracing", "tracing_from_config"]


class Tracing:
    def __init__(self, tracer: Any, provider: Any):
        self._tracer = tracer
        self._provider = provider

    def span(self, name: str, **attributes: Any) -> Any:
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def wrap(self, stage: Stage) -> Stage:
        return _TracedStage(stage, self)

    def shutdown(self) -> None:
        self._provider.shutdown()


class _TracedStage:
    def __init__(self, stage: Stage, tracing: Tracing):
        self.name = stage.name
        self._stage = stage
        self._tracing = tracing

    async def __call__(self, ctx: ChatContext, call_next: Next) -> Outcome:
        with self._tracing.span(f"chatgate.stage.{self.name}"):
            return await self._stage(ctx, call_next)


def tracing_from_config(config: ObservabilityConfig) -> Tracing | None:
    if not config.otel_endpoint:
        return None
    try:
        trace = importlib.import_module("opentelemetry.trace")
        sdk = importlib.import_module("opentelemetry.sdk.trace")
        export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        raise ConfigError(
            "observability.otel_endpoint needs the otel extra: pip install 'chatgate[otel]'"
        ) from None
    resource = resources.Resource.create({"service.name": config.otel_service_name})
    provider = sdk.TracerProvider(resource=resource)
    provider.add_span_processor(
        export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=config.otel_endpoint))
    )
    return Tracing(trace.get_tracer("chatgate", tracer_provider=provider), provider)
