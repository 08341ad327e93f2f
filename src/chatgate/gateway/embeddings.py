"""Embedding models by id, and the ``/v1/embeddings`` answer.

Embedding models live beside the chat models (`embedding_models` in config; ids unique across
both). Vectors come back from providers as float32 arrays and are rendered once here: floats
through orjson's NumPy support, or base64 of the little-endian float32 bytes — what the official
SDK asks for by default and decodes with NumPy, so a vector keeps its full width either way.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from chatgate.config import LocalEmbeddingModelConfig, Settings, resolve_secret
from chatgate.gateway.auth import Principal
from chatgate.protocol import ModelNotFoundError, ModelObject
from chatgate.protocol.embeddings import EmbeddingRequest
from chatgate.providers.base import ProviderState
from chatgate.providers.embedding import (
    EmbeddingProvider,
    EmbeddingResult,
    LocalEmbeddingProvider,
    OpenAICompatEmbeddingProvider,
)

__all__ = ["EmbeddingModel", "EmbeddingModels", "render_embeddings"]


@dataclass(slots=True, eq=False)
class EmbeddingModel:
    name: str
    aliases: list[str]
    owned_by: str
    provider: EmbeddingProvider
    created: int

    def model_object(self, model_id: str | None = None) -> ModelObject:
        return {
            "id": model_id or self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


class EmbeddingModels:
    def __init__(self, models: Iterable[EmbeddingModel]):
        self._models = list(models)
        self._by_id = {i: m for m in self._models for i in (m.name, *m.aliases)}

    @classmethod
    def from_settings(cls, settings: Settings, *, created: int) -> EmbeddingModels:
        models = []
        for config in settings.embedding_models:
            provider: EmbeddingProvider
            if isinstance(config, LocalEmbeddingModelConfig):
                provider = LocalEmbeddingProvider(config)
            else:
                key = resolve_secret(config.api_key_env, config.api_key_file)
                provider = OpenAICompatEmbeddingProvider(config, key)
            models.append(
                EmbeddingModel(config.name, config.aliases, config.owned_by, provider, created)
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

    def names(self) -> list[str]:
        """Every id an embedding model answers to (names and aliases)."""
        return list(self._by_id)

    def states(self) -> dict[str, ProviderState]:
        return {m.name: m.provider.state for m in self._models}

    async def start(self) -> None:
        await asyncio.gather(*(m.provider.start() for m in self._models))

    async def close(self) -> None:
        await asyncio.gather(*(m.provider.close() for m in self._models))

    async def create(self, principal: Principal, request: EmbeddingRequest) -> bytes:
        """The ``/v1/embeddings`` answer for ``request``, serialised."""
        if not principal.may_use_model(request.model):
            raise ModelNotFoundError(request.model)
        model = self.resolve(request.model)
        extra = dict(request.extra)
        if request.user is not None:
            extra["user"] = request.user
        result = await model.provider.embed(
            request.texts, request.token_arrays, dimensions=request.dimensions, extra=extra
        )
        return render_embeddings(result, request.model, request.encoding_format)


def render_embeddings(result: EmbeddingResult, model: str, encoding_format: str) -> bytes:
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
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
