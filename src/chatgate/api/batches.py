"""``/v1/batches``: create, retrieve, list, cancel — in OpenAI's shapes. A batch belongs to the
key (and owner) that created it; its input file must be theirs too."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.api.files import missing_file
from chatgate.api.governed import Governed
from chatgate.api.render import json_response, list_page, page_params
from chatgate.gateway import Authenticator
from chatgate.gateway.auth import access_of
from chatgate.gateway.batches import BatchRunner
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import BATCHES, NO_MODEL, Deferred
from chatgate.protocol import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    validate,
)
from chatgate.protocol.batches import BatchCreateRequest
from chatgate.state.batches import BatchStore
from chatgate.state.files import FileStore
from chatgate.state.tables import BatchRow

__all__ = ["BatchEndpoints", "batch_object"]

_WINDOW = 24 * 3600
_STAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def batch_object(row: BatchRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": row.errors,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": row.status,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": int(row.created_at),
        "expires_at": int(row.expires_at),
        "request_counts": {"total": row.total, "completed": row.completed, "failed": row.failed},
        "usage": {
            "input_tokens": row.input_tokens,
            "input_tokens_details": {"cached_tokens": row.cached_tokens},
            "output_tokens": row.output_tokens,
            "output_tokens_details": {"reasoning_tokens": row.reasoning_tokens},
            "total_tokens": row.input_tokens + row.output_tokens,
        },
        "metadata": row.batch_metadata,
    }
    for stamp in _STAMPS:
        value = getattr(row, stamp)
        body[stamp] = None if value is None else int(value)
    if row.model is not None:
        body["model"] = row.model
    # OpenAI's schema types these as present-or-absent (its SDK reads absent as None)
    return {k: v for k, v in body.items() if v is not None}


def _missing(batch_id: str) -> NotFoundError:
    return NotFoundError(
        f"No batch found with id '{batch_id}'.", param="batch_id", code="batch_not_found"
    )


class BatchEndpoints:
    def __init__(
        self,
        store: BatchStore,
        files: FileStore,
        authenticator: Authenticator,
        runner: BatchRunner | None,
        governed: Governed,
    ):
        self._store, self._files, self._auth = store, files, authenticator
        self._runner = runner
        self._governed = governed

    async def create(self, request: Request) -> Response | ASGIApp:
        async def work(end: RequestEnd) -> Response:
            body = validate(BatchCreateRequest, await self._governed.json(request, end))
            assert end.principal is not None
            principal = end.principal
            info = await self._files.get(body.input_file_id, access_of(principal))
            if info is None:
                raise missing_file(body.input_file_id, "input_file_id")
            if info.purpose != "batch":
                raise InvalidRequestError(
                    f"File {info.id} has purpose `{info.purpose}`; a batch needs purpose `batch`.",
                    param="input_file_id",
                )
            key = principal.key

            async def record() -> BatchRow:
                return await self._store.create(
                    endpoint=body.endpoint,
                    input_file_id=info.id,
                    completion_window=body.completion_window,
                    metadata=body.metadata,
                    key_id=key.id if key is not None else None,
                    owner=key.owner if key is not None else None,
                    window_seconds=_WINDOW,
                )

            row, ctx = await self._governed.run(BATCHES, Deferred(record), NO_MODEL, end, request)
            if self._runner is not None:
                self._runner.nudge()
            return self._governed.answer(end, ctx, orjson.dumps(batch_object(row)))

        return await self._governed(request, BATCHES, work)

    async def _find(self, request: Request) -> BatchRow:
        principal = await authenticate(request, self._auth, "batches")
        batch_id = request.path_params["batch_id"]
        row = await self._store.get(batch_id, access_of(principal))
        if row is None:
            raise _missing(batch_id)
        return row

    async def retrieve(self, request: Request) -> Response:
        return json_response(batch_object(await self._find(request)))

    async def cancel(self, request: Request) -> Response:
        row = await self._find(request)
        if row.status in ("cancelling", "cancelled"):
            return json_response(batch_object(row))
        if not await self._store.move(row.id, ("validating", "in_progress"), "cancelling"):
            raise ConflictError(
                f"Batch {row.id} is {row.status} and can no longer be cancelled.",
                param="batch_id",
                code="batch_not_cancellable",
            )
        if self._runner is not None:
            self._runner.nudge()
        current = await self._store.get(row.id)
        assert current is not None
        return json_response(batch_object(current))

    async def results(self, request: Request) -> Response:
        """chatgate's extension: the lines committed so far (``?kind=output`` or ``errors``),
        in input order — a running batch's partial results."""
        row = await self._find(request)
        kind = request.query_params.get("kind", "output")
        if kind not in ("output", "errors"):
            raise InvalidRequestError("`kind` must be `output` or `errors`.", param="kind")
        content = await self._store.results(row.id, ok=kind == "output")
        return Response(content, media_type="application/jsonl")

    async def list_batches(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "batches")
        after, limit, _ = page_params(request)
        rows, more = await self._store.list_batches(access_of(principal), after=after, limit=limit)
        return json_response(list_page([batch_object(r) for r in rows], more))
