"""The admin API: ``/admin/keys`` (create, list, show, revoke, rotate) and ``/admin/audit``."""

from __future__ import annotations

import datetime
import hmac
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import require_admin
from chatgate.api.render import json_response
from chatgate.gateway.dashboard import dashboard_data
from chatgate.gateway.regressions import find_regressions
from chatgate.gateway.services import Services
from chatgate.gateway.stages.budget import periods
from chatgate.protocol import (
    ChatgateError,
    InvalidRequestError,
    NotFoundError,
    parse_json_object,
    validate,
)
from chatgate.protocol.admin import KeyCreateRequest, KeyRotateRequest, KeyUpdateRequest
from chatgate.state import ApiKey, DecryptionError, KeySpec
from chatgate.state.request_log import GROUPS
from chatgate.state.storage import STORAGE_GROUPS, day_of

__all__ = ["AdminEndpoints"]


def _with_secret(key: ApiKey, secret: str) -> dict[str, Any]:
    return {**key.public(), "secret": secret}


def _when(value: str | None, param: str) -> float | None:
    """A time bound: Unix seconds, or an ISO date/datetime (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"`{param}` must be Unix seconds or an ISO date such as 2026-11-01.", param=param
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _seconds(value: str, param: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not 0 < seconds <= 366 * 86400:
        raise InvalidRequestError(f"`{param}` must be a number of seconds.", param=param)
    return seconds


def _missing(key_id: str) -> NotFoundError:
    return NotFoundError(f"No key with id `{key_id}`.", param="id", code="key_not_found")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return parse_json_object(raw) if raw.strip() else {}


class AdminEndpoints:
    def __init__(self, services: Services):
        self._services = services
        self._auth = services.authenticator

    async def create_key(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        spec = validate(KeyCreateRequest, await _body(request))
        key, secret = await self._services.keys.create(
            KeySpec.from_request(spec),
            actor=actor,
        )
        self._auth.invalidate()
        return json_response(_with_secret(key, secret), 201)

    async def list_keys(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        include = request.query_params.get("include_revoked", "false").lower()
        if include not in ("true", "false"):
            raise InvalidRequestError(
                "`include_revoked` must be true or false.", param="include_revoked"
            )
        keys = await self._services.keys.list_keys(include_revoked=include == "true")
        return json_response({"object": "list", "data": [k.public() for k in keys]})

    async def get_key(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        key_id = request.path_params["key_id"]
        key = await self._services.keys.get(key_id)
        if key is None:
            raise _missing(key_id)
        current = periods(datetime.datetime.now(datetime.UTC))
        spent = await self._services.spend.get(f"key:{key_id}", current.values())
        spend = {kind: spent[period] for kind, period in current.items()}
        return json_response({**key.public(), "spend": spend})

    async def update_key(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        key_id = request.path_params["key_id"]
        update = validate(KeyUpdateRequest, await _body(request))
        try:
            changes = update.changes()
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="name") from None
        key = await self._services.keys.update(key_id, changes, actor=actor)
        if key is None:
            raise _missing(key_id)
        self._auth.invalidate(key_id)
        return json_response(key.public())

    async def revoke_key(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        key_id = request.path_params["key_id"]
        key = await self._services.keys.revoke(key_id, actor=actor)
        if key is None:
            raise _missing(key_id)
        self._auth.invalidate(key_id)
        return json_response(key.public())

    async def rotate_key(self, request: Request) -> Response:
        actor = (await require_admin(request, self._auth)).actor
        key_id = request.path_params["key_id"]
        body = validate(KeyRotateRequest, await _body(request))
        rotated = await self._services.keys.rotate(
            key_id, grace_seconds=body.grace_period, actor=actor
        )
        if rotated is None:
            if await self._services.keys.get(key_id) is None:
                raise _missing(key_id)
            raise InvalidRequestError(
                f"Key `{key_id}` is revoked or expired and cannot be rotated.",
                param="id",
                code="key_inactive",
            )
        self._auth.invalidate(key_id)
        return json_response(_with_secret(*rotated))

    async def limits(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        stage = self._services.rate_limits
        gate = stage.gate
        return json_response(
            {
                "object": "chatgate.limits",
                "backend": self._services.settings.limits.backend,
                "waiting": gate.depth(),
                "waited_requests": gate.waited_count,
                "waited_seconds": gate.waited_total,
                "backend_errors": stage.backend_errors,
            }
        )

    async def routing(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        models = [
            {
                "model": group.name,
                "fallbacks": group.fallbacks,
                "deployments": [
                    {
                        "provider": d.config.provider,
                        "weight": d.config.weight,
                        "in_flight": d.in_flight,
                        "breaker": d.breaker.state,
                    }
                    for d in group.deployments
                ],
            }
            for group in self._services.registry.groups
        ]
        return json_response({"object": "chatgate.routing", "models": models})

    async def storage(self, request: Request) -> Response:
        """Vector storage in GB-days and its cost, per key, owner, store or day."""
        await require_admin(request, self._auth)
        group_by = request.query_params.get("group_by", "key")
        if group_by not in STORAGE_GROUPS:
            raise InvalidRequestError(
                f"`group_by` must be one of {', '.join(STORAGE_GROUPS)}.", param="group_by"
            )
        start = _when(request.query_params.get("from"), "from")
        end = _when(request.query_params.get("to"), "to")
        price = self._services.settings.vector_stores.storage_price
        rows = await self._services.vector_stores.storage.ledger.report(
            group_by,  # type: ignore[arg-type]
            price,
            None if start is None else day_of(start),
            None if end is None else day_of(end),
        )
        return json_response(
            {
                "object": "list",
                "group_by": group_by,
                "price_per_gb_day": price,
                "data": [row.as_dict() for row in rows],
            }
        )

    async def usage(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        group_by = request.query_params.get("group_by", "model")
        if group_by not in GROUPS:
            raise InvalidRequestError(
                f"`group_by` must be one of {', '.join(GROUPS)}.", param="group_by"
            )
        start = _when(request.query_params.get("from"), "from")
        end = _when(request.query_params.get("to"), "to")
        rows = await self._services.request_log.usage(group_by, start, end)  # type: ignore[arg-type]
        return json_response(
            {"object": "list", "group_by": group_by, "data": [row.as_dict() for row in rows]}
        )

    async def regressions(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        window = _seconds(request.query_params.get("window", "3600"), "window")
        baseline = _seconds(request.query_params.get("baseline", "86400"), "baseline")
        report = await find_regressions(
            self._services.request_log, window=window, baseline=baseline
        )
        return json_response(report)

    async def dashboard_data(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        hours = _seconds(request.query_params.get("hours", "24"), "hours")
        if hours > 24 * 90:
            raise InvalidRequestError("`hours` may be at most 2160.", param="hours")
        return json_response(await dashboard_data(self._services.request_log, hours))

    async def bodies(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        request_id = request.path_params["request_id"]
        try:
            found = await self._services.bodies.get(request_id)
        except DecryptionError as exc:
            raise ChatgateError(f"Stored bodies cannot be read: {exc}.") from None
        if not found:
            raise NotFoundError(f"No stored bodies for request `{request_id}`.", param="request_id")
        return json_response(
            {
                "object": "chatgate.bodies",
                "request_id": request_id,
                **{kind: body.decode("utf-8", "replace") for kind, body in found.items()},
            }
        )

    async def metrics(self, request: Request) -> Response:
        token = self._services.metrics_token
        header = request.headers.get("authorization", "")
        if not (token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())):
            await require_admin(request, self._auth)
        registry = self._services.observer.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def audit(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("`limit` must be an integer from 1 to 1000.", param="limit")
        entries = await self._services.audit.entries(limit=limit)
        data = [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "details": e.details,
            }
            for e in entries
        ]
        return json_response({"object": "list", "data": data})
