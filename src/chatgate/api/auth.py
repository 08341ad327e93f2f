"""Request authentication for endpoints: who is calling, and may they call this endpoint."""

from __future__ import annotations

from starlette.requests import Request

from chatgate.gateway import Authenticator, Principal
from chatgate.protocol import PermissionDeniedError

__all__ = ["authenticate", "require_admin"]


async def authenticate(request: Request, authenticator: Authenticator, endpoint: str) -> Principal:
    principal = await authenticator.authenticate(
        request.headers.get("authorization"), request.headers.get("origin")
    )
    principal.check_endpoint(endpoint)
    request.state.principal = principal
    return principal


async def require_admin(request: Request, authenticator: Authenticator) -> Principal:
    principal = await authenticator.authenticate(
        request.headers.get("authorization"), request.headers.get("origin")
    )
    if not principal.is_admin:
        raise PermissionDeniedError("The admin API needs the master key.")
    return principal
