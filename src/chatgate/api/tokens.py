"""``POST /v1/tokens``: mint a short-lived browser token from a real key (server side)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.api.render import json_response
from chatgate.gateway import Authenticator
from chatgate.protocol import PermissionDeniedError, parse_json_object, validate
from chatgate.protocol.admin import TokenRequest

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    def __init__(self, authenticator: Authenticator):
        self._auth = authenticator

    async def mint(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "tokens")
        if principal.kind != "key" or principal.key is None:
            raise PermissionDeniedError(
                "Browser tokens are minted with a virtual key (not a token or the master key)."
            )
        raw = await request.body()
        spec = validate(TokenRequest, parse_json_object(raw) if raw.strip() else {})
        token, claims = self._auth.signer.mint(principal.key, spec)
        return json_response(claims.public(token))
