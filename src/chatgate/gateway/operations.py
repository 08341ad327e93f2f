"""The operations a caller can make, each passing the same pipeline: what a key's scope calls
them, how the request log and metrics name them, and how their tokens are counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chatgate.gateway.context import ChatContext, Context, Operation, Target
from chatgate.pricing import FREE

__all__ = [
    "BATCHES",
    "CHAT",
    "CHAT_ONLY",
    "EMBEDDINGS",
    "FILES",
    "MODERATIONS",
    "NO_MODEL",
    "OPERATIONS",
    "VECTOR_STORE_FILES",
    "VECTOR_STORE_SEARCH",
    "Deferred",
    "rough_tokens",
    "run_deferred",
]


async def _chat_prompt_tokens(ctx: ChatContext) -> int:
    """With the model's tokenizer where it has one, else an estimate."""
    counted = await ctx.model.provider.count_tokens(ctx.request)
    return counted if counted is not None else ctx.request.rough_prompt_tokens()


def _chat_output_reserve(ctx: ChatContext, default: int) -> int:
    request = ctx.request
    return (request.completion_limit or default) * request.choice_count


def rough_tokens(texts: list[str]) -> int:
    """A quick estimate of the tokens in ``texts`` (about 4 characters a token, at least one
    each), where counting exactly would mean tokenizing on the request path; reservations made
    with it are settled to the real usage."""
    return sum(len(text) // 4 + 1 for text in texts)


def _chat(**kwargs: Any) -> Operation:
    return Operation(
        count_input=_chat_prompt_tokens,
        output_reserve=_chat_output_reserve,
        **kwargs,
    )


CHAT = _chat(
    name="chat.completions",
    scope="chat.completions",
    endpoint="/v1/chat/completions",
    gen_ai="chat",
)
EMBEDDINGS = Operation("embeddings", "embeddings", "/v1/embeddings", "embeddings")
MODERATIONS = Operation(
    "moderations", "moderations", "/v1/moderations", "moderation", model_scoped=False
)
VECTOR_STORE_SEARCH = Operation(
    "vector_stores.search",
    "vector_stores",
    "/v1/vector_stores/{vector_store_id}/search",
    "retrieval",
    model_scoped=False,  # the store decides the embedding model; access to it is the scope
)
VECTOR_STORE_FILES = Operation(
    "vector_stores.files",
    "vector_stores",
    "/v1/vector_stores/{vector_store_id}/files",
    "embeddings",
    model_scoped=False,
)
"""A file's ingestion into a vector store: its chunks embedded (background priority)."""
FILES = Operation("files", "files", "/v1/files", "upload", model_scoped=False)
BATCHES = Operation("batches", "batches", "/v1/batches", "batch", model_scoped=False)

OPERATIONS = (
    CHAT,
    EMBEDDINGS,
    MODERATIONS,
    VECTOR_STORE_SEARCH,
    VECTOR_STORE_FILES,
    FILES,
    BATCHES,
)
"""Every operation (bounded: these name the request log's and metrics' ``endpoint``)."""

CHAT_ONLY = frozenset({CHAT.name})
"""For stages that only chat passes (guards, grounding, context fit, cache)."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """An operation whose work its caller brings: an upload read from the request only once the
    pipeline admits it, a batch recorded. The pipeline governs it like any other."""

    run: Callable[[], Awaitable[Any]]


async def run_deferred(ctx: Context[Deferred, Any]) -> Any:
    """The innermost step of ``files`` and ``batches``: the caller's work."""
    return await ctx.request.run()


NO_MODEL = Target("-", FREE)
"""The target of operations no model serves (uploads, batch creation): free of charge."""
