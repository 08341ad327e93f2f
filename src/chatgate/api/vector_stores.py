"""``/v1/vector_stores``: OpenAI's Vector Stores API — stores, their files, file batches and
search. A key sees its own stores and its owner's; others get a 404."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.api.governed import Governed
from chatgate.api.render import json_response, list_page, page_params
from chatgate.gateway import Authenticator
from chatgate.gateway.auth import access_of
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import VECTOR_STORE_SEARCH
from chatgate.gateway.vector_stores import VectorStores, file_object, store_object
from chatgate.protocol import InvalidRequestError, parse_json_object, validate
from chatgate.protocol.vector_stores import (
    VectorStoreCreateRequest,
    VectorStoreFileAttributesRequest,
    VectorStoreFileBatchRequest,
    VectorStoreFileRequest,
    VectorStoreSearchRequest,
    VectorStoreUpdateRequest,
)
from chatgate.state.files import FileAccess
from chatgate.state.vector_stores import FILE_STATUSES

__all__ = ["VectorStoreEndpoints"]


POLL_AFTER_MS = "100"
"""The hint the SDK's ``*_and_poll`` helpers read (``openai-poll-after-ms``) while ingestion runs;
their default is a second, and a small file is indexed in a fraction of that."""


def _pollable(payload: dict[str, Any]) -> Response:
    response = json_response(payload)
    if payload.get("status") == "in_progress":
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return response


class VectorStoreEndpoints:
    def __init__(
        self,
        stores: VectorStores,
        authenticator: Authenticator,
        governed: Governed,
    ):
        self._stores = stores
        self._auth = authenticator
        self._governed = governed

    async def _access(self, request: Request) -> FileAccess:
        return access_of(await authenticate(request, self._auth, "vector_stores"))

    async def _body(self, request: Request) -> dict[str, Any]:
        return parse_json_object(await request.body())

    async def create(self, request: Request) -> Response:
        access = await self._access(request)
        body = validate(VectorStoreCreateRequest, await self._body(request))
        return json_response(await self._stores.create(body, access))

    async def list_stores(self, request: Request) -> Response:
        access = await self._access(request)
        after, limit, descending = page_params(request)
        stores, more = await self._stores.store.list_stores(
            access, after=after, limit=limit, descending=descending
        )
        return json_response(list_page([store_object(s) for s in stores], more))

    async def retrieve(self, request: Request) -> Response:
        access = await self._access(request)
        info = await self._stores.find(request.path_params["vector_store_id"], access)
        return json_response(store_object(info))

    async def update(self, request: Request) -> Response:
        access = await self._access(request)
        body = validate(VectorStoreUpdateRequest, await self._body(request))
        store_id = request.path_params["vector_store_id"]
        return json_response(await self._stores.update(store_id, body, access))

    async def delete(self, request: Request) -> Response:
        access = await self._access(request)
        return json_response(
            await self._stores.delete(request.path_params["vector_store_id"], access)
        )

    async def search(self, request: Request) -> Response | ASGIApp:
        governed = self._governed

        async def work(end: RequestEnd) -> Response:
            body = validate(VectorStoreSearchRequest, await governed.json(request, end))
            assert end.principal is not None
            store_id = request.path_params["vector_store_id"]
            search, model = await self._stores.searchable(store_id, body, access_of(end.principal))
            page, ctx = await governed.run(
                VECTOR_STORE_SEARCH, search, model, end, request, input_tokens=search.input_tokens
            )
            return governed.answer(end, ctx, orjson.dumps(page))

        return await governed(request, VECTOR_STORE_SEARCH, work)

    # -- files ----------------------------------------------------------------------------

    async def attach(self, request: Request) -> Response:
        access = await self._access(request)
        body = validate(VectorStoreFileRequest, await self._body(request))
        store_id = request.path_params["vector_store_id"]
        return _pollable(
            await self._stores.attach(
                store_id, body.file_id, body.chunking_strategy, body.attributes, access
            )
        )

    async def list_files(self, request: Request) -> Response:
        access = await self._access(request)
        store_id = request.path_params["vector_store_id"]
        await self._stores.find(store_id, access)
        after, limit, descending = page_params(request)
        status = request.query_params.get("filter") or None
        if status is not None and status not in FILE_STATUSES:
            raise InvalidRequestError(
                f"`filter` must be one of {', '.join(FILE_STATUSES)}.", param="filter"
            )
        files, more = await self._stores.store.list_files(
            store_id,
            status=status,
            batch_id=request.path_params.get("batch_id"),
            after=after,
            limit=limit,
            descending=descending,
        )
        return json_response(list_page([file_object(f) for f in files], more))

    async def list_batch_files(self, request: Request) -> Response:
        access = await self._access(request)
        store_id, batch_id = request.path_params["vector_store_id"], request.path_params["batch_id"]
        await self._stores.batch(store_id, batch_id, access)
        return await self.list_files(request)

    async def retrieve_file(self, request: Request) -> Response:
        access = await self._access(request)
        params = request.path_params
        return _pollable(
            await self._stores.file(params["vector_store_id"], params["file_id"], access)
        )

    async def update_file(self, request: Request) -> Response:
        access = await self._access(request)
        body = validate(VectorStoreFileAttributesRequest, await self._body(request))
        params = request.path_params
        return json_response(
            await self._stores.set_attributes(
                params["vector_store_id"], params["file_id"], body.attributes, access
            )
        )

    async def delete_file(self, request: Request) -> Response:
        access = await self._access(request)
        params = request.path_params
        return json_response(
            await self._stores.detach(params["vector_store_id"], params["file_id"], access)
        )

    async def file_content(self, request: Request) -> Response:
        access = await self._access(request)
        params = request.path_params
        return json_response(
            await self._stores.file_content(params["vector_store_id"], params["file_id"], access)
        )

    # -- file batches ---------------------------------------------------------------------

    async def create_batch(self, request: Request) -> Response:
        access = await self._access(request)
        body = validate(VectorStoreFileBatchRequest, await self._body(request))
        store_id = request.path_params["vector_store_id"]
        return _pollable(await self._stores.create_batch(store_id, body, access))

    async def retrieve_batch(self, request: Request) -> Response:
        access = await self._access(request)
        params = request.path_params
        return _pollable(
            await self._stores.batch(params["vector_store_id"], params["batch_id"], access)
        )

    async def cancel_batch(self, request: Request) -> Response:
        access = await self._access(request)
        params = request.path_params
        return json_response(
            await self._stores.cancel_batch(params["vector_store_id"], params["batch_id"], access)
        )

    def routes(self) -> list[tuple[str, Any, str]]:
        base = "/v1/vector_stores"
        one = base + "/{vector_store_id}"
        batch = one + "/file_batches/{batch_id}"
        return [
            (base, self.create, "POST"),
            (base, self.list_stores, "GET"),
            (one, self.retrieve, "GET"),
            (one, self.update, "POST"),
            (one, self.delete, "DELETE"),
            (one + "/search", self.search, "POST"),
            (one + "/files", self.attach, "POST"),
            (one + "/files", self.list_files, "GET"),
            (one + "/files/{file_id}", self.retrieve_file, "GET"),
            (one + "/files/{file_id}", self.update_file, "POST"),
            (one + "/files/{file_id}", self.delete_file, "DELETE"),
            (one + "/files/{file_id}/content", self.file_content, "GET"),
            (one + "/file_batches", self.create_batch, "POST"),
            (batch, self.retrieve_batch, "GET"),
            (batch + "/cancel", self.cancel_batch, "POST"),
            (batch + "/files", self.list_batch_files, "GET"),
        ]
