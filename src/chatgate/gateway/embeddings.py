"""Embedding models by id, and the ``/v1/embeddings`` answer.

Embedding models live beside the chat models (`embedding_models` in config; ids unique across
both). Vectors come back from providers as float32 arrays and are rendered once here: floats
through orjson's NumPy support, or base64 of the little-endian float32 bytes — what the official
SDK asks for by default and decodes with NumPy, so a vector keeps its full width either way.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from chatgate.config import (
    EmbeddingModelConfig,
    LocalEmbeddingModelConfig,
    Settings,
    resolve_secret,
)
from chatgate.gateway.context import AnyContext, Context
from chatgate.gateway.operations import rough_tokens
from chatgate.pricing import FREE, Price, PriceTable
from chatgate.protocol import ModelNotFoundError, ModelObject
from chatgate.protocol.embeddings import EmbeddingRequest
from chatgate.providers.base import ProviderState
from chatgate.providers.embedding import (
    BACKGROUND,
    INTERACTIVE,
    EmbeddingProvider,
    EmbeddingResult,
    LocalEmbeddingProvider,
    OpenAICompatEmbeddingProvider,
)

__all__ = [
    "EmbeddingContext",
    "EmbeddingModel",
    "EmbeddingModels",
    "embeddings_payload",
    "input_tokens",
    "render_embeddings",
    "served",
]

LOW = 2
"""The ``low`` priority (batch lines): embedded after interactive work."""


@dataclass(slots=True, eq=False)
class EmbeddingModel:
    name: str
    aliases: list[str]
    owned_by: str
    provider: EmbeddingProvider
    created: int
    price: Price | None = None
    """USD per 1M input tokens (``Price.input``); None when unknown."""
    kind: str = "local"
    """``local`` or ``openai_compat``: who runs it."""

    @property
    def most_expensive(self) -> Price | None:
        return self.price

    def model_object(self, model_id: str | None = None) -> ModelObject:
        return {
            "id": model_id or self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


def _price(config: EmbeddingModelConfig, table: PriceTable) -> Price | None:
    if config.pricing is not None:
        return Price(config.pricing.input, config.pricing.input, 0.0)
    if isinstance(config, LocalEmbeddingModelConfig):
        return FREE
    return table.lookup(config.upstream_model or config.name)


EmbeddingContext = Context[EmbeddingRequest, EmbeddingModel]


def input_tokens(request: EmbeddingRequest) -> int:
    """The input's tokens as far as they are known before embedding: exact for token arrays,
    an estimate for texts (settled to the model's count afterwards)."""
    if request.token_arrays is not None:
        return sum(len(tokens) for tokens in request.token_arrays)
    return rough_tokens(request.texts or [])


class EmbeddingModels:
    def __init__(self, models: Iterable[EmbeddingModel]):
        self._models = list(models)
        self._by_id = {i: m for m in self._models for i in (m.name, *m.aliases)}

    @classmethod
    def from_settings(cls, settings: Settings, *, created: int) -> EmbeddingModels:
        models = []
        table = PriceTable.defaults()
        for config in settings.embedding_models:
            provider: EmbeddingProvider
            if isinstance(config, LocalEmbeddingModelConfig):
                provider = LocalEmbeddingProvider(config)
            else:
                key = resolve_secret(config.api_key_env, config.api_key_file)
                provider = OpenAICompatEmbeddingProvider(config, key)
            models.append(
                EmbeddingModel(
                    config.name,
                    config.aliases,
                    config.owned_by,
                    provider,
                    created,
                    _price(config, table),
                    config.provider,
                )
            )
        return cls(models)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._by_id

    def resolve(self, model_id: str) -> EmbeddingModel:
        try:
            return self._by_id[model_id]
        except KeyError:
            raise ModelNotFoundError(model_id) from None

    @property
    def default(self) -> EmbeddingModel | None:
        return self._models[0] if self._models else None

    def models(self) -> list[ModelObject]:
        return [m.model_object() for m in self._models]

    def all(self) -> list[EmbeddingModel]:
        return list(self._models)

    def names(self) -> list[str]:
        """Every id an embedding model answers to (names and aliases)."""
        return list(self._by_id)

    def states(self) -> dict[str, ProviderState]:
        return {m.name: m.provider.state for m in self._models}

    async def start(self) -> None:
        await asyncio.gather(*(m.provider.start() for m in self._models))

    async def close(self) -> None:
        await asyncio.gather(*(m.provider.close() for m in self._models))

    async def __call__(self, ctx: EmbeddingContext) -> EmbeddingResult:
        """The pipeline's innermost step for ``/v1/embeddings``: embed, and record the usage."""
        request, model = ctx.request, ctx.model
        extra = dict(request.extra)
        if request.user is not None:
            extra["user"] = request.user
        ctx.marks["upstream_start"] = time.monotonic()
        result = await model.provider.embed(
            request.texts,
            request.token_arrays,
            dimensions=request.dimensions,
            extra=extra,
            priority=BACKGROUND if ctx.priority >= LOW else INTERACTIVE,
        )
        ctx.marks["upstream_end"] = time.monotonic()
        served(ctx, model, result.prompt_tokens)
        return result


def served(ctx: AnyContext, model: EmbeddingModel, tokens: int) -> None:
    """``ctx`` was served by ``model`` on ``tokens`` input tokens: its usage, price, provider."""
    ctx.stats.usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    ctx.price = model.price
    ctx.provider = model.kind


def render_embeddings(result: EmbeddingResult, model: str, encoding_format: str) -> bytes:
    return orjson.dumps(
        embeddings_payload(result, model, encoding_format), option=orjson.OPT_SERIALIZE_NUMPY
    )


def embeddings_payload(
    result: EmbeddingResult, model: str, encoding_format: str
) -> dict[str, object]:
    """OpenAI's embeddings response (vectors as NumPy rows, or base64 text: serialise with
    ``orjson.OPT_SERIALIZE_NUMPY``)."""
    vectors = result.vectors
    data: list[dict[str, object]] = []
    if encoding_format == "base64":
        little = vectors.astype("<f4", copy=False)
        for index, row in enumerate(little):
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": base64.b64encode(row.tobytes()).decode("ascii"),
                }
            )
    else:
        for index, row in enumerate(vectors):
            data.append({"object": "embedding", "index": index, "embedding": row})
    tokens = result.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
