"""Model scope of the caller's key or token, and a browser token's ``max_tokens`` cap."""

from __future__ import annotations

from chatgate.gateway.context import ChatContext, Next, Outcome
from chatgate.protocol import PermissionDeniedError

__all__ = ["AccessStage"]


class AccessStage:
    name = "access"

    async def __call__(self, ctx: ChatContext, call_next: Next) -> Outcome:
        principal = ctx.principal
        model = ctx.request.model
        if not principal.may_use_model(model):
            raise PermissionDeniedError(f"You may not use the model `{model}`.", param="model")
        cap = principal.token.max_tokens if principal.token is not None else None
        if cap is not None:
            asked = ctx.request.completion_limit
            if asked is not None and asked > cap:
                raise PermissionDeniedError(
                    f"This token allows at most {cap} tokens per request.", param="max_tokens"
                )
            if asked is None:
                ctx.request.max_tokens = cap
                ctx.body["max_tokens"] = cap
        return await call_next(ctx)
