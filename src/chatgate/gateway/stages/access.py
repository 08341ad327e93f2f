"""The caller's model scope (every operation that uses a model), and a browser token's
``max_tokens`` cap (chat)."""

from __future__ import annotations

from typing import Any

from chatgate.gateway.context import AnyContext, Next
from chatgate.gateway.operations import CHAT
from chatgate.protocol import ChatCompletionRequest, PermissionDeniedError

__all__ = ["AccessStage"]


class AccessStage:
    name = "access"
    operations = None

    async def __call__(self, ctx: AnyContext, call_next: Next) -> Any:
        principal = ctx.principal
        model = getattr(ctx.request, "model", None) or ctx.model.name
        if ctx.op.model_scoped and not principal.may_use_model(model):
            raise PermissionDeniedError(f"You may not use the model `{model}`.", param="model")
        cap = principal.token.max_tokens if principal.token is not None else None
        if cap is not None and ctx.op is CHAT:
            request: ChatCompletionRequest = ctx.request
            asked = request.completion_limit
            if asked is not None and asked > cap:
                raise PermissionDeniedError(
                    f"This token allows at most {cap} tokens per request.", param="max_tokens"
                )
            if asked is None:
                request.max_tokens = cap
                ctx.body["max_tokens"] = cap
        return await call_next(ctx)
