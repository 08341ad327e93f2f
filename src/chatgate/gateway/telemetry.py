"""Optional OpenTelemetry, following the GenAI semantic conventions: a span per operation
(``{gen_ai.operation.name} {gen_ai.request.model}``) with a child span per pipeline stage, and the
GenAI metrics — ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.server.time_to_first_token``, ``gen_ai.server.time_per_output_token`` — exported over
OTLP/HTTP. Installed with the ``otel`` extra; off unless an endpoint is set.

A streamed answer's span and measurements end when the stream does (usage arrives last).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator
from typing import Any

from chatgate.config import ConfigError, ObservabilityConfig
from chatgate.gateway.context import AnyContext, Next, Stage
from chatgate.gateway.streams import ChunkStream, peek
from chatgate.protocol import ChatCompletionChunk, ChatgateError

__all__ = ["Telemetry", "telemetry_from_config"]

_DURATION_BUCKETS = [
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
_TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]


def _provider_name(ctx: AnyContext) -> str:
    """``gen_ai.provider.name``: ``openai`` for OpenAI-compatible upstreams (they speak its API),
    ``chatgate`` for what chatgate runs itself (the embedded models, moderation rules, search)."""
    return "openai" if ctx.provider == "openai_compat" else "chatgate"


class Telemetry:
    def __init__(self, tracer: Any, meter: Any, shutdown: list[Any]):
        self._tracer = tracer
        self._trace = importlib.import_module("opentelemetry.trace")
        self._shutdown = shutdown
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time to generate the first token for successful responses",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.tpot = meter.create_histogram(
            "gen_ai.server.time_per_output_token",
            unit="s",
            description="Time per output token generated after the first token",
            explicit_bucket_boundaries_advisory=_TPOT_BUCKETS,
        )

    def span(self, name: str, **attributes: Any) -> Any:
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def wrap(self, stage: Stage) -> Stage:
        return _TracedStage(stage, self)

    async def run(self, ctx: AnyContext, chain: Next) -> Any:
        """Run ``chain`` inside the operation's span; the span and the measurements end with
        the operation (a stream's when it ends)."""
        request_model = ctx.model.name
        span = self._tracer.start_span(
            f"{ctx.op.gen_ai} {request_model}",
            kind=self._trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": ctx.op.gen_ai,
                "gen_ai.request.model": request_model,
                "chatgate.operation": ctx.op.name,
                "chatgate.request_id": ctx.request_id,
                **_request_attributes(ctx),
            },
        )
        try:
            with self._trace.use_span(span, end_on_exit=False, record_exception=False):
                outcome = await chain(ctx)
        except BaseException as exc:
            self._end(ctx, span, (), exc)
            raise
        if isinstance(outcome, ChunkStream):
            return await peek(self._stream(ctx, span, outcome))
        reasons = (
            tuple(
                c["finish_reason"] for c in (outcome.get("choices") or []) if c.get("finish_reason")
            )
            if isinstance(outcome, dict)
            else ()
        )
        self._end(ctx, span, reasons, None)
        return outcome

    async def _stream(
        self, ctx: AnyContext, span: Any, chunks: ChunkStream
    ) -> AsyncIterator[ChatCompletionChunk]:
        reasons: list[str] = []
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                for choice in chunk.get("choices") or []:
                    reason = choice.get("finish_reason")
                    if reason:
                        reasons.append(reason)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await chunks.aclose()
            self._end(ctx, span, tuple(reasons), error)

    def _end(
        self,
        ctx: AnyContext,
        span: Any,
        reasons: tuple[str, ...],
        error: BaseException | None,
    ) -> None:
        usage = ctx.stats.usage
        response_model = ctx.stats.upstream_model or (
            ctx.served_by.name if ctx.served_by is not None else ctx.model.name
        )
        common = {
            "gen_ai.operation.name": ctx.op.gen_ai,
            "gen_ai.provider.name": _provider_name(ctx),
            "gen_ai.request.model": ctx.model.name,
            "gen_ai.response.model": response_model,
        }
        span.set_attribute("gen_ai.provider.name", common["gen_ai.provider.name"])
        span.set_attribute("gen_ai.response.model", response_model)
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(reasons))
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage["prompt_tokens"])
            span.set_attribute("gen_ai.usage.output_tokens", usage["completion_tokens"])
        cost = ctx.cost()
        if cost is not None:
            span.set_attribute("chatgate.cost", cost)
        if error is not None:
            kind = error.error_type if isinstance(error, ChatgateError) else type(error).__name__
            common["error.type"] = kind
            span.set_attribute("error.type", kind)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)[:200]))
        now = time.monotonic()
        self.duration.record(now - ctx.started, common)
        if usage is not None and error is None:
            self.tokens.record(usage["prompt_tokens"], {**common, "gen_ai.token.type": "input"})
            if ctx.op.output_reserve is not None:
                output = usage["completion_tokens"]
                self.tokens.record(output, {**common, "gen_ai.token.type": "output"})
                first = ctx.marks.get("first_chunk")
                if first is not None and ctx.stream:
                    self.ttft.record(first - ctx.started, common)
                    if output > 1:
                        self.tpot.record((now - first) / (output - 1), common)
        span.end()

    def shutdown(self) -> None:
        for provider in self._shutdown:
            provider.shutdown()


def _request_attributes(ctx: AnyContext) -> dict[str, Any]:
    request = ctx.request
    out: dict[str, Any] = {}
    for field, attribute in (
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("seed", "gen_ai.request.seed"),
        ("max_completion_tokens", "gen_ai.request.max_tokens"),
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("n", "gen_ai.request.choice.count"),
    ):
        value = getattr(request, field, None)
        if value is not None and attribute not in out:
            out[attribute] = value
    return out


class _TracedStage:
    def __init__(self, stage: Stage, telemetry: Telemetry):
        self.name = stage.name
        self.operations = stage.operations
        self._stage = stage
        self._telemetry = telemetry

    async def __call__(self, ctx: AnyContext, call_next: Next) -> Any:
        with self._telemetry.span(f"chatgate.stage.{self.name}"):
            return await self._stage(ctx, call_next)


def _metrics_endpoint(config: ObservabilityConfig) -> str | None:
    if config.otel_metrics_endpoint is not None:
        return config.otel_metrics_endpoint
    traces = config.otel_endpoint or ""
    if traces.endswith("/v1/traces"):
        return traces[: -len("/v1/traces")] + "/v1/metrics"
    return None


def telemetry_from_config(config: ObservabilityConfig) -> Telemetry | None:
    if not config.otel_endpoint:
        return None
    try:
        trace = importlib.import_module("opentelemetry.trace")
        metrics = importlib.import_module("opentelemetry.metrics")
        sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
        sdk_metrics = importlib.import_module("opentelemetry.sdk.metrics")
        export = importlib.import_module("opentelemetry.sdk.trace.export")
        metric_export = importlib.import_module("opentelemetry.sdk.metrics.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        otlp_metrics = importlib.import_module(
            "opentelemetry.exporter.otlp.proto.http.metric_exporter"
        )
    except ImportError:
        raise ConfigError(
            "observability.otel_endpoint needs the otel extra: pip install 'chatgate[otel]'"
        ) from None
    resource = resources.Resource.create({"service.name": config.otel_service_name})
    tracer_provider = sdk_trace.TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=config.otel_endpoint))
    )
    readers = []
    endpoint = _metrics_endpoint(config)
    if endpoint is not None:
        readers.append(
            metric_export.PeriodicExportingMetricReader(
                otlp_metrics.OTLPMetricExporter(endpoint=endpoint),
                export_interval_millis=config.otel_metrics_interval * 1000,
            )
        )
    meter_provider = sdk_metrics.MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(
        trace.get_tracer("chatgate", tracer_provider=tracer_provider),
        metrics.get_meter("chatgate", meter_provider=meter_provider),
        [tracer_provider, meter_provider],
    )
