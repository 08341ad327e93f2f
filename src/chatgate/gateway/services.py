"""Everything a running gateway holds, built once from settings: the store and its repositories,
the authenticator, the model registry and the pipeline. The CLI uses the same pieces."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from chatgate.budgets import BudgetCounters, MemoryBudgets, RedisBudgets
from chatgate.cache import MemoryCache, RedisCache, ResponseCache
from chatgate.config import ConfigError, Settings, resolve_secret
from chatgate.gateway.auth import Authenticator
from chatgate.gateway.auto import AutoModels
from chatgate.gateway.batch_lines import LineAnswerer
from chatgate.gateway.batches import BatchRunner
from chatgate.gateway.embeddings import EmbeddingModels
from chatgate.gateway.experiments import Experiments
from chatgate.gateway.guards import Guards
from chatgate.gateway.knowledge import KnowledgeStage
from chatgate.gateway.moderations import Moderations
from chatgate.gateway.observe import Metrics, Observer
from chatgate.gateway.operations import (
    BATCHES,
    CHAT,
    EMBEDDINGS,
    FILES,
    MODERATIONS,
    VECTOR_STORE_FILES,
    VECTOR_STORE_SEARCH,
    run_deferred,
)
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.prompts import PromptLibrary
from chatgate.gateway.registry import ModelRegistry
from chatgate.gateway.routing import Router
from chatgate.gateway.stages import (
    AccessStage,
    BudgetStage,
    CacheStage,
    ContextStage,
    DeadlineStage,
    GuardStage,
    RateLimitStage,
)
from chatgate.gateway.telemetry import Telemetry, telemetry_from_config
from chatgate.gateway.tokens import TokenSigner
from chatgate.gateway.vector_stores import VectorStores
from chatgate.limits import Limiter, MemoryLimiter, RedisLimiter
from chatgate.limits.waiting import PriorityGate
from chatgate.preflight import master_key, store
from chatgate.redis_client import RedisClients
from chatgate.state import AuditLog, BodyStore, Keyring, KeyStore
from chatgate.state.batches import BatchStore
from chatgate.state.feedback import FeedbackStore
from chatgate.state.files import FileStore
from chatgate.state.prompts import PromptStore
from chatgate.state.request_log import RequestLogStore
from chatgate.state.spend import SpendStore
from chatgate.state.token_uses import TokenUses
from chatgate.state.vector_stores import VectorStoreStore

__all__ = ["Services"]

log = logging.getLogger("chatgate")


def _token_secret(settings: Settings, master: str | None) -> bytes:
    configured = resolve_secret(
        settings.auth.token_secret_env, settings.auth.token_secret_file, required=False
    )
    if configured:
        return configured.encode()
    if master:
        # Every replica shares the master key, so they derive the same signing secret.
        hkdf = HKDF(hashes.SHA256(), length=32, salt=None, info=b"chatgate browser tokens")
        return hkdf.derive(master.encode())
    return secrets.token_bytes(32)  # open single-process mode: tokens live as long as it does


class Services:
    def __init__(self, settings: Settings, *, telemetry: Telemetry | None = None):
        """``telemetry``: instead of what ``observability`` configures (tests read spans and
        metrics from memory)."""
        master = master_key(settings)
        self.settings = settings
        self.db = store(settings)
        self.keys = KeyStore(self.db)
        self.audit = AuditLog(self.db)
        self.keyring = Keyring.from_config(settings.encryption)
        self.bodies = BodyStore(self.db, self.keyring)
        self.authenticator = Authenticator(
            self.keys,
            TokenUses(self.db),
            TokenSigner(
                _token_secret(settings, master),
                default_ttl=min(settings.auth.token_ttl, settings.auth.token_max_ttl),
                max_ttl=settings.auth.token_max_ttl,
            ),
            master_key=master,
            cache_ttl=settings.auth.key_cache_ttl,
            poll_interval=settings.auth.revocation_poll_interval,
        )
        self.registry = ModelRegistry.from_settings(settings, created=int(time.time()))
        self.embedding_models = EmbeddingModels.from_settings(settings, created=int(time.time()))
        self.metrics = Metrics()
        self.telemetry = telemetry or telemetry_from_config(settings.observability)
        limits = settings.limits
        self.redis = RedisClients(settings.redis)
        self.limiter: Limiter = (
            RedisLimiter(self.redis.get(limits.redis_url), prefix=limits.redis_prefix)
            if limits.backend == "redis"
            else MemoryLimiter()
        )
        self.rate_limits = RateLimitStage(self.limiter, limits, PriorityGate())
        caching = settings.cache
        self.response_cache: ResponseCache = (
            RedisCache(self.redis.get(caching.redis_url), prefix=caching.redis_prefix)
            if caching.backend == "redis"
            else MemoryCache(caching.max_bytes)
        )
        self.cache = CacheStage(self.response_cache, caching, self._semantic_embedder())
        spending = settings.budgets
        self.budget_counters: BudgetCounters = (
            RedisBudgets(self.redis.get(spending.redis_url), prefix=spending.redis_prefix)
            if spending.backend == "redis"
            else MemoryBudgets()
        )
        self.spend = SpendStore(self.db)
        self.feedback = FeedbackStore(self.db)
        self.files = FileStore(self.db, self.keyring)
        self.guards = Guards(settings.guards)
        self.moderations = Moderations(self.guards)
        self.prompts = PromptLibrary(
            PromptStore(self.db),
            poll_interval=settings.prompts.poll_interval,
            guard_policies=self.guards.policy_names,
        )
        self.budgets = BudgetStage(self.budget_counters, self.spend, spending, limits)
        self.vector_stores = VectorStores(
            VectorStoreStore(self.db), self.files, self.embedding_models, settings.vector_stores
        )
        self.pipeline = Pipeline(
            self.registry,
            [
                AccessStage(),
                GuardStage(self.guards),
                KnowledgeStage(self.vector_stores, settings.vector_stores, self.registry),
                ContextStage(),
                self.rate_limits,
                self.budgets,
                DeadlineStage(),
                self.cache,
            ],
            {
                EMBEDDINGS: self.embedding_models,
                MODERATIONS: self.moderations,
                VECTOR_STORE_SEARCH: self.vector_stores,
                VECTOR_STORE_FILES: self.vector_stores.runner.embed_chunks,
                FILES: run_deferred,
                BATCHES: run_deferred,
                CHAT: Router(
                    self.registry,
                    settings.routing,
                    lambda model, status: self.metrics.upstream_errors.labels(
                        model, str(status)
                    ).inc(),
                ),
            },
            request_timeout=settings.server.request_timeout,
            auto=AutoModels(settings.auto_models, self.registry),
            telemetry=self.telemetry,
            prompts=self.prompts,
            experiments=Experiments(settings.experiments, self.registry),
        )
        known = {name for g in self.registry.groups for name in (g.name, *g.aliases)}
        known |= set(self.embedding_models.names()) | {self.moderations.target.name}
        known |= {a.name for a in settings.auto_models}
        self.request_log = RequestLogStore(self.db)
        self.observer = Observer(
            self.request_log, settings.observability, known, self.bodies, self.metrics
        )
        self.vector_stores.runner.governed_by(self.pipeline, self.observer, self.keys)
        self.batches = BatchStore(self.db, self.keyring)
        self.batch_runner = BatchRunner(
            store=self.batches,
            files=self.files,
            keys=self.keys,
            answerer=LineAnswerer(
                self.pipeline, self.observer, self.moderations, self.embedding_models
            ),
            config=settings.batches,
            files_config=settings.files,
        )
        self._run_batches = False
        self._run_ingest = False
        self.metrics.watch(self._gauges)
        self.metrics_token = resolve_secret(
            settings.observability.metrics_token_env, None, required=False
        )

    def _gauges(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "chatgate_limit_waiting",
            "Requests waiting for rate-limit capacity",
            labels=["priority"],
        )
        for priority, count in self.rate_limits.gate.depth().items():
            waiting.add_metric([priority], count)
        queued = GaugeMetricFamily(
            "chatgate_model_queue_depth", "Requests queued for a local model", labels=["model"]
        )
        breakers = GaugeMetricFamily(
            "chatgate_breaker_open",
            "1 while a deployment's circuit breaker is open or half-open",
            labels=["model", "deployment"],
        )
        for group in self.registry.groups:
            for index, deployment in enumerate(group.deployments):
                depth = getattr(deployment.provider, "queue_depth", None)
                if isinstance(depth, int):
                    queued.add_metric([group.name], depth)
                state = deployment.breaker.state
                breakers.add_metric([group.name, str(index)], 0 if state == "closed" else 1)
        return [waiting, queued, breakers]

    def _semantic_embedder(self) -> Callable[[str], Awaitable[np.ndarray]] | None:
        """The semantic cache's embedding function, when it is on."""
        caching = self.settings.cache
        if not caching.semantic:
            return None
        chosen = caching.semantic_model
        model = (
            self.embedding_models.resolve(chosen)
            if chosen is not None
            else self.embedding_models.default
        )
        if model is None:
            raise ConfigError("cache.semantic needs an embedding model (embedding_models)")
        provider = model.provider

        async def embed(text: str) -> np.ndarray:
            vector: np.ndarray = (await provider.embed([text])).vectors[0]
            return vector / max(float(np.linalg.norm(vector)), 1e-12)

        return embed

    async def start(self, *, run_batches: bool | None = None) -> None:
        """Start everything; the batch runner too when ``batches.runner`` is ``server`` (or
        ``run_batches`` says so: ``chatgate worker``)."""
        if self.settings.store.migrate_on_start:
            await self.db.upgrade()
        else:
            await self.db.check_schema()
        if self.settings.prompts.directory is not None:
            await self.prompts.load_directory(self.settings.prompts.directory)
        await self.authenticator.start()
        await self.budgets.start()
        await self.observer.start()
        await self.registry.start()
        await self.embedding_models.start()
        await self.vector_stores.start()
        if run_batches if run_batches is not None else self.settings.batches.runner == "server":
            await self.batch_runner.start()
            self._run_batches = True
        if (
            run_batches
            if run_batches is not None
            else self.settings.vector_stores.runner == "server"
        ):
            await self.vector_stores.runner.start()
            self._run_ingest = True
        if self.authenticator.open:
            log.warning(
                "NO MASTER KEY: chatgate is OPEN — every endpoint, admin included, answers "
                "anyone who can reach %s. Set CHATGATE_MASTER_KEY to require keys.",
                self.settings.server.host,
            )

    async def close(self) -> None:
        if self._run_batches:
            await self.batch_runner.close()
        if self._run_ingest:
            await self.vector_stores.runner.close()
        await self.registry.close()
        await self.embedding_models.close()
        await self.vector_stores.close()
        await self.limiter.close()
        await self.budgets.close()
        await self.budget_counters.close()
        await self.response_cache.close()
        await self.redis.close()
        await self.guards.close()
        await self.authenticator.close()
        await self.observer.close()
        await self.db.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
