"""Grounded chat: a chat request names vector stores (the ``knowledge`` extension field, or a
model bound to stores in config); the best chunks for the user's last message are put before
the conversation as numbered sources with a cite-your-sources instruction, and the response
carries ``citations`` — file, chunk, score and character offsets into the source text.

When no chunk is similar enough to the question (``vector_stores.grounding_threshold``), the
model is not called: the answer says it does not know (``vector_stores.no_answer``), so a
knowledge-base bot does not make something up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from chatgate.config import KnowledgeBinding, VectorStoresConfig
from chatgate.gateway.auth import Principal, access_of
from chatgate.gateway.context import ChatContext, ChatNext, Outcome
from chatgate.gateway.degraded import canned_outcome
from chatgate.gateway.operations import CHAT_ONLY
from chatgate.gateway.registry import ModelRegistry
from chatgate.gateway.streams import ChunkStream
from chatgate.gateway.vector_stores import VectorStores
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    InvalidRequestError,
    validate,
)
from chatgate.protocol.vector_stores import ComparisonFilter, CompoundFilter
from chatgate.retrieval.search import Hit
from chatgate.state.files import FileAccess

__all__ = ["Grounding", "KnowledgeRequest", "KnowledgeStage"]


class KnowledgeRequest(BaseModel):
    """The ``knowledge`` field of a chat request."""

    model_config = ConfigDict(extra="forbid")

    vector_store_ids: Annotated[
        list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=10)
    ]
    max_num_results: Annotated[int, Field(ge=1, le=20)] = 4
    filters: ComparisonFilter | CompoundFilter | None = None
    search_mode: Literal["hybrid", "vector", "keyword"] = "hybrid"


@dataclass(slots=True)
class Grounding:
    """What retrieval found for one request."""

    citations: list[dict[str, Any]]
    no_answer: str | None = None
    """Set when nothing relevant was found: the reply to give instead of calling the model."""


def _question(request: ChatCompletionRequest) -> str:
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(getattr(part, "text", "") or "" for part in content)
    return ""


_T = TypeVar("_T", ChatCompletion, ChatCompletionChunk)


def _with_citations(payload: _T, citations: list[dict[str, Any]]) -> _T:
    """A copy with chatgate's ``citations`` field (the original may be shared: coalesced
    requests, the cache)."""
    copied: dict[str, Any] = {**payload, "citations": citations}
    return cast(_T, copied)


def citation(index: int, hit: Hit) -> dict[str, Any]:
    return {
        "index": index,
        "vector_store_id": hit.vector_store_id,
        "file_id": hit.file_id,
        "filename": hit.filename,
        "chunk_index": hit.seq,
        "score": round(hit.score, 6),
        "similarity": round(hit.similarity, 6),
        "start_char": hit.start,
        "end_char": hit.end,
        "text": hit.text,
    }


class KnowledgeStage:
    """After access and guards (the question is screened before it is searched for), before
    context fitting, limits and the cache (which see the grounded request)."""

    name = "knowledge"
    operations = CHAT_ONLY

    def __init__(self, stores: VectorStores, config: VectorStoresConfig, registry: ModelRegistry):
        self._stores = stores
        self._config = config
        self._bindings: dict[str, KnowledgeBinding] = {}
        for group in registry.groups:
            binding = group.config.knowledge
            if binding is not None:
                for model_id in (group.name, *group.aliases):
                    self._bindings[model_id] = binding

    async def apply(
        self, request: ChatCompletionRequest, body: dict[str, Any], principal: Principal
    ) -> tuple[ChatCompletionRequest, Grounding | None]:
        raw = body.pop("knowledge", None)
        if raw is None and request.model not in self._bindings:
            return request, None
        if raw is not None:
            spec = self._parse(raw)
            access = access_of(principal)
        else:
            binding = self._bindings[request.model]
            spec = KnowledgeRequest(
                vector_store_ids=binding.vector_store_ids,
                max_num_results=binding.max_num_results,
            )
            access = FileAccess(None, None, admin=True)  # bound by the operator
        stores = []
        for store_id in spec.vector_store_ids:
            info = await self._stores.find(store_id, access)
            if info.expired:
                raise InvalidRequestError(
                    f"Vector store '{store_id}' has expired.",
                    param="knowledge.vector_store_ids",
                    code="expired",
                )
            stores.append((info.id, info.embedding_model))
        question = _question(request).strip()
        hits: list[Hit] = []
        if question:
            hits = await self._stores.searcher.search(
                stores,
                [question],
                limit=spec.max_num_results,
                filters=spec.filters,
                mode=spec.search_mode,
            )
            self._stores.activity.touched(s for s, _ in stores)
        relevant = [h for h in hits if h.similarity >= self._config.grounding_threshold]
        if not relevant:
            return validate(ChatCompletionRequest, body), Grounding([], self._config.no_answer)
        citations = [citation(i, hit) for i, hit in enumerate(relevant, start=1)]
        sources = "\n\n".join(f"[{c['index']}] ({c['filename']})\n{c['text']}" for c in citations)
        grounding_message = {
            "role": "system",
            "content": f"{self._config.grounding_instructions}\n\nSources:\n\n{sources}",
        }
        messages = list(body.get("messages") or [])
        leading = 0
        while (
            leading < len(messages)
            and isinstance(messages[leading], dict)
            and (messages[leading].get("role") in ("system", "developer"))
        ):
            leading += 1
        body["messages"] = [*messages[:leading], grounding_message, *messages[leading:]]
        return validate(ChatCompletionRequest, body), Grounding(citations)

    async def __call__(self, ctx: ChatContext, call_next: ChatNext) -> Outcome:
        request, grounding = await self.apply(ctx.request, ctx.body, ctx.principal)
        if grounding is None:
            return await call_next(ctx)
        ctx.request = request
        if grounding.no_answer is not None:
            outcome = await canned_outcome(ctx, grounding.no_answer, "stop", "grounded")
        else:
            outcome = await call_next(ctx)
        citations = grounding.citations
        if isinstance(outcome, ChunkStream):
            outcome.with_first(lambda chunk: _with_citations(chunk, citations))
            return outcome
        return _with_citations(outcome, citations)

    def _parse(self, raw: Any) -> KnowledgeRequest:
        if not isinstance(raw, dict):
            raise InvalidRequestError(
                "'knowledge' must be an object with 'vector_store_ids'.",
                param="knowledge",
                code="invalid_value",
            )
        try:
            return validate(KnowledgeRequest, raw)
        except InvalidRequestError as error:
            error.param = f"knowledge.{error.param}" if error.param else "knowledge"
            raise
