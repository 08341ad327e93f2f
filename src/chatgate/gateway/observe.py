"""What happened to each request: a record for the request log (buffered, written in batches,
never blocking a request), Prometheus metrics with bounded labels, and one JSON log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from chatgate.config import ObservabilityConfig
from chatgate.gateway.auth import Principal
from chatgate.gateway.context import AnyContext
from chatgate.gateway.operations import CHAT, OPERATIONS
from chatgate.state.bodies import BodyStore
from chatgate.state.request_log import RECORD_FIELDS, RequestLogStore, RequestRecord
from chatgate.tasks import stop_task

__all__ = ["Metrics", "Observer", "RequestEnd"]

log = logging.getLogger("chatgate.requests")
events = structlog.get_logger("chatgate.requests")

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass(slots=True)
class RequestEnd:
    """How a request ended, as the API layer saw it."""

    request_id: str
    model: str
    principal: Principal | None
    started: float
    """``time.monotonic()`` when the request arrived."""
    status: int
    error_type: str | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    ctx: AnyContext | None = None
    request_body: bytes | None = None
    """Kept only when body logging is on."""
    response_body: bytes | None = None
    endpoint: str = CHAT.endpoint
    """The operation's route (its ``Operation.endpoint``)."""
    client_request_id: str | None = None
    """The id the client gave its request, if any (a correlation id; ``request_id`` is ours)."""
    deferred: bool = False
    """A stream that reports its own end (the API layer does not, when the handler returns)."""


class Metrics:
    """chatgate's Prometheus metrics, in a registry of their own. Labels come from config (model
    names) or small fixed sets — never user text, never secrets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "chatgate_requests",
            "Requests by endpoint, model and status",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "chatgate_request_duration_seconds",
            "Total request time",
            ["endpoint", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "chatgate_time_to_first_token_seconds",
            "Time to the first chunk",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.overhead = Histogram(
            "chatgate_gateway_overhead_seconds",
            "Time spent in the gateway itself (total minus upstream, queue and limit waits)",
            buckets=_OVERHEAD,
            registry=r,
        )
        self.tokens = Counter(
            "chatgate_tokens",
            "Tokens by endpoint, model and kind",
            ["endpoint", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "chatgate_cost", "Spend by endpoint and model", ["endpoint", "model"], registry=r
        )
        self.cache = Counter("chatgate_cache", "Cache lookups by result", ["result"], registry=r)
        self.rejections = Counter(
            "chatgate_rejections",
            "Requests refused by limits and budgets",
            ["endpoint", "kind"],
            registry=r,
        )
        self.log_drops = Counter(
            "chatgate_request_log_drops", "Request records dropped (buffer full)", registry=r
        )
        self.upstream_errors = Counter(
            "chatgate_upstream_errors",
            "Failed provider attempts by model and status",
            ["model", "status"],
            registry=r,
        )

    def watch(self, state: Callable[[], Iterable[Metric]]) -> None:
        """Add gauges read at scrape time (queue depth, breaker state)."""
        self.registry.register(_Gauges(state))


class _Gauges(Collector):
    def __init__(self, state: Callable[[], Iterable[Metric]]):
        self._state = state

    def collect(self) -> Iterable[Metric]:
        return self._state()


class Observer:
    def __init__(
        self,
        store: RequestLogStore,
        config: ObservabilityConfig,
        known_models: set[str],
        bodies: BodyStore,
        metrics: Metrics,
    ):
        self._store = store
        self._bodies = bodies
        self._body_buffer: deque[tuple[str, str, bytes]] = deque()
        self._config = config
        self._known = known_models | {"-"}
        self._endpoints = {op.endpoint for op in OPERATIONS}
        self.metrics = metrics
        self._buffer: deque[RequestRecord] = deque()
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def _label(self, model: str) -> str:
        return model if model in self._known else "unknown"

    def _endpoint(self, endpoint: str) -> str:
        return endpoint if endpoint in self._endpoints else "unknown"

    def finish(self, end: RequestEnd) -> None:
        """Record a finished request (any outcome). Never blocks, never raises."""
        try:
            self._finish(end)
        except Exception:
            log.exception("could not record request %s", end.request_id)

    def _finish(self, end: RequestEnd) -> None:
        ctx, principal, started, model = end.ctx, end.principal, end.started, end.model
        status, error_type = end.status, end.error_type
        total = time.monotonic() - started
        usage = ctx.stats.usage if ctx is not None else None
        cost = ctx.cost() if ctx is not None else None
        marks = ctx.marks if ctx is not None else {}
        first, last = marks.get("first_chunk"), marks.get("upstream_end")
        begin = marks.get("upstream_start")
        ttft = first - started if first is not None else None
        upstream = last - begin if last is not None and begin is not None else None
        waits = (ctx.stats.queue_wait_s + sum(ctx.timings.values())) if ctx else 0.0
        overhead = max(0.0, total - (upstream or 0.0) - waits) if upstream is not None else None
        prompt = usage["prompt_tokens"] if usage else 0
        completion = usage["completion_tokens"] if usage else 0
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) if usage else 0
        key = principal.key if principal is not None else None
        served = ctx.served_by if ctx is not None else None
        record = RequestRecord(
            request_id=end.request_id,
            at=time.time(),
            key_id=key.id if key else None,
            owner=key.owner if key else None,
            model=model[:200],
            model_served=served.name if served else _served_model(ctx),
            provider=served.config.provider if served else (ctx.provider if ctx else None),
            status=status,
            error_type=error_type,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cost=cost or 0.0,
            request_bytes=end.request_bytes,
            response_bytes=end.response_bytes,
            queue_ms=(ctx.stats.queue_wait_s * 1000) if ctx else 0.0,
            ttft_ms=ttft * 1000 if ttft is not None else None,
            upstream_ms=upstream * 1000 if upstream is not None else None,
            total_ms=total * 1000,
            overhead_ms=overhead * 1000 if overhead is not None else None,
            cache=ctx.response_headers.get("x-chatgate-cache") if ctx else None,
            attempts=ctx.attempts if ctx else 0,
            stream=bool(ctx and ctx.stream),
            priority=("critical", "normal", "low")[ctx.priority] if ctx else None,
            endpoint=end.endpoint,
            client_request_id=end.client_request_id,
            usage_source=ctx.stats.usage_source if ctx is not None else None,
        )
        if ctx is not None:
            _annotate(record, ctx)
        label, where = self._label(model), self._endpoint(end.endpoint)
        m = self.metrics
        m.requests.labels(where, label, str(status)).inc()
        m.latency.labels(where, label).observe(total)
        if ttft is not None:
            m.ttft.labels(label).observe(ttft)
        if overhead is not None:
            m.overhead.observe(overhead)
        m.tokens.labels(where, label, "prompt").inc(prompt)
        m.tokens.labels(where, label, "completion").inc(completion)
        m.tokens.labels(where, label, "cached").inc(cached)
        m.cost.labels(where, label).inc(record.cost)
        if record.cache:
            m.cache.labels(record.cache).inc()
        if status == 429:
            m.rejections.labels(where, error_type or "rate_limit_error").inc()
        events.info("request", **_fields(record))
        if not self._config.request_log:
            return
        if len(self._buffer) >= self._config.buffer_size:
            self.dropped += 1
            m.log_drops.inc()
            if self.dropped % 1000 == 1:
                log.warning("request log buffer full: %d records dropped so far", self.dropped)
            return
        self._buffer.append(record)
        if self._config.log_bodies:
            for kind, body in (("request", end.request_body), ("response", end.response_body)):
                if body is not None:
                    self._body_buffer.append((end.request_id, kind, body))

    async def start(self) -> None:
        if self._config.request_log:
            self._task = asyncio.create_task(self._flusher(), name="chatgate-request-log")

    async def close(self) -> None:
        await stop_task(self._task)
        await self.flush()
        self._store.close()

    @property
    def flush_interval(self) -> float:
        return self._config.flush_interval

    @property
    def wants_bodies(self) -> bool:
        return self._config.request_log and self._config.log_bodies

    async def flush(self) -> None:
        if self._body_buffer:
            bodies = list(self._body_buffer)
            self._body_buffer.clear()
            try:
                await self._bodies.put_many(bodies)
            except Exception:
                log.exception("storing %d request bodies failed; retrying later", len(bodies))
                self._body_buffer.extendleft(reversed(bodies))
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(_BATCH, len(self._buffer)))]
            try:
                await self._store.insert(batch)
            except Exception:
                log.exception("writing %d request records failed; retrying later", len(batch))
                self._buffer.extendleft(reversed(batch))
                return

    async def _flusher(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(self._config.flush_interval)
            await self.flush()
            if time.monotonic() - last_purge > 3600:
                last_purge = time.monotonic()
                with contextlib.suppress(Exception):
                    await self._store.purge(time.time() - self._config.retention_days * 86400)


_BATCH = 100
"""Records per write: each write holds the event loop (and the GIL) for a moment, so many small
writes keep request latency flat where one large one shows up in the p99 (bench/stages.py)."""


def _fields(record: RequestRecord) -> dict[str, object]:
    # Flat record of plain values: getattr per field is ~10x cheaper than dataclasses.asdict.
    return {name: getattr(record, name) for name in RECORD_FIELDS}


def _served_model(ctx: AnyContext | None) -> str | None:
    """What served an operation other than chat (chat's router names its deployment)."""
    if ctx is None or ctx.op is CHAT or ctx.stats.usage is None:
        return None
    name: str = ctx.model.name
    return None if name == "-" else name


def _annotate(record: RequestRecord, ctx: AnyContext) -> None:
    """The record's fields from the request's template and guards."""
    record.guard_flags = ctx.guard_flags.text()
    if ctx.assignment is not None:
        record.experiment = ctx.assignment.experiment
        record.variant = ctx.assignment.variant
    if ctx.prompt is not None:
        record.prompt_id = ctx.prompt.id
        record.prompt_version = ctx.prompt.version
        record.prompt_label = ctx.prompt.label
