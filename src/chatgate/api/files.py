"""``/v1/files``: upload (multipart), list with pagination, retrieve, content, delete — in
OpenAI's shapes. A key sees only its own files and its owner's; others get a 404, as if the file
did not exist."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp

from chatgate.api.auth import authenticate
from chatgate.api.governed import Governed
from chatgate.api.render import json_response, list_page
from chatgate.config import FilesConfig
from chatgate.gateway import Authenticator
from chatgate.gateway.auth import Principal, access_of
from chatgate.gateway.observe import RequestEnd
from chatgate.gateway.operations import FILES, NO_MODEL, Deferred
from chatgate.protocol import InvalidRequestError, NotFoundError, PayloadTooLargeError
from chatgate.protocol.files import UPLOAD_PURPOSES, DeletedFile, FileObject
from chatgate.state.files import FileInfo, FileStore, FileTooLarge

__all__ = ["FileEndpoints", "file_object", "missing_file"]

_READ = 1 << 20
_MIN_EXPIRY, _MAX_EXPIRY = 3600, 30 * 86400


def file_object(info: FileInfo) -> FileObject:
    body: FileObject = {
        "id": info.id,
        "object": "file",
        "bytes": info.bytes,
        "created_at": int(info.created_at),
        "filename": info.filename,
        "purpose": info.purpose,
        "status": "processed",
    }
    if info.expires_at is not None:
        body["expires_at"] = int(info.expires_at)
    return body


def missing_file(file_id: str, param: str = "file_id") -> NotFoundError:
    return NotFoundError(f"No such File object: {file_id}", param=param, code="file_not_found")


def _expiry(value: str | None, param: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequestError(f"`{param}` must be a number.", param=param) from None


class FileEndpoints:
    def __init__(
        self,
        store: FileStore,
        authenticator: Authenticator,
        config: FilesConfig,
        governed: Governed,
    ):
        self._store = store
        self._auth = authenticator
        self._config = config
        self._governed = governed

    async def create(self, request: Request) -> Response | ASGIApp:
        async def work(end: RequestEnd) -> Response:
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith("multipart/form-data"):
                raise InvalidRequestError(
                    "Upload files as multipart/form-data with fields `file` and `purpose`.",
                    code="invalid_content_type",
                )
            assert end.principal is not None
            principal = end.principal

            async def upload() -> FileInfo:  # read only once the pipeline has admitted it
                info = await self._upload(request, principal)
                end.request_bytes = info.bytes
                return info

            info, ctx = await self._governed.run(FILES, Deferred(upload), NO_MODEL, end, request)
            return self._governed.answer(end, ctx, orjson.dumps(file_object(info)))

        return await self._governed(request, FILES, work, watch=False)

    async def _upload(self, request: Request, principal: Principal) -> FileInfo:
        async with request.form(max_files=1, max_fields=8) as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload, UploadFile):
                raise InvalidRequestError("Missing required parameter: 'file'.", param="file")
            if not isinstance(purpose, str):
                raise InvalidRequestError("Missing required parameter: 'purpose'.", param="purpose")
            if purpose not in UPLOAD_PURPOSES:
                raise InvalidRequestError(
                    f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
                    f"{list(UPLOAD_PURPOSES)}.",
                    param="purpose",
                )
            expires_at = self._expires_at(
                form.get("expires_after[anchor]"), form.get("expires_after[seconds]"), purpose
            )
            key = principal.key

            async def pieces() -> AsyncIterator[bytes]:
                while piece := await upload.read(_READ):
                    yield piece

            try:
                return await self._store.create(
                    pieces(),
                    purpose=purpose,
                    filename=(upload.filename or "upload")[:512],
                    key_id=key.id if key is not None else None,
                    owner=key.owner if key is not None else None,
                    expires_at=expires_at,
                    max_bytes=self._config.max_bytes,
                )
            except FileTooLarge as exc:
                raise PayloadTooLargeError(
                    f"The file is larger than the limit of {exc.limit} bytes.",
                    param="file",
                    code="file_too_large",
                ) from None

    def _expires_at(self, anchor: object, seconds: object, purpose: str) -> float | None:
        now = time.time()
        if anchor is None and seconds is None:
            return now + self._config.batch_expiry if purpose == "batch" else None
        if anchor != "created_at":
            raise InvalidRequestError(
                "`expires_after[anchor]` must be `created_at`.", param="expires_after.anchor"
            )
        after = _expiry(seconds if isinstance(seconds, str) else None, "expires_after.seconds")
        if after is None or not _MIN_EXPIRY <= after <= _MAX_EXPIRY:
            raise InvalidRequestError(
                f"`expires_after[seconds]` must be between {_MIN_EXPIRY} and {_MAX_EXPIRY}.",
                param="expires_after.seconds",
            )
        return now + after

    async def _find(self, request: Request) -> FileInfo:
        principal = await authenticate(request, self._auth, "files")
        file_id = request.path_params["file_id"]
        info = await self._store.get(file_id, access_of(principal))
        if info is None:
            raise missing_file(file_id)
        return info

    async def list_files(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "files")
        params = request.query_params
        limit = _expiry(params.get("limit"), "limit") or 10_000
        if not 1 <= limit <= 10_000:
            raise InvalidRequestError("`limit` must be between 1 and 10000.", param="limit")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
        files, more = await self._store.list_files(
            access_of(principal),
            purpose=params.get("purpose") or None,
            after=params.get("after") or None,
            limit=limit,
            descending=order == "desc",
        )
        return json_response(list_page([file_object(f) for f in files], more))

    async def retrieve(self, request: Request) -> Response:
        return json_response(file_object(await self._find(request)))

    async def content(self, request: Request) -> Response:
        info = await self._find(request)
        return StreamingResponse(
            self._store.chunks(info.id),
            media_type="application/octet-stream",
            headers={"content-length": str(info.bytes)},
        )

    async def delete(self, request: Request) -> Response:
        info = await self._find(request)
        await self._store.delete(info.id)
        deleted: DeletedFile = {"id": info.id, "object": "file", "deleted": True}
        return json_response(deleted)
