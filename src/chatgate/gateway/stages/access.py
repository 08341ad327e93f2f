"""The one access decision: the caller's model scope, checked on the model that runs (resolved
from whatever id or alias the client sent; the router checks fallbacks the same way), for every
operation that uses a model; and a browser token's ``max_tokens`` cap on the whole answer
(chat: ``n`` choices together)."""

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
        model = ctx.model  # resolved: the model that runs, whatever id the client sent
        if ctx.op.model_scoped and not principal.may_use_model(model.name, model.aliases):
            asked = getattr(ctx.request, "model", None) or model.name
            raise PermissionDeniedError(f"You may not use the model `{asked}`.", param="model")
        cap = principal.token.max_tokens if principal.token is not None else None
        if cap is not None and ctx.op is CHAT:
            _cap_completion(ctx.request, ctx.body, cap)
        return await call_next(ctx)


def _cap_completion(request: ChatCompletionRequest, body: dict[str, Any], cap: int) -> None:
    """A token's ``max_tokens`` cap bounds the whole answer: every choice together."""
    choices = request.choice_count
    asked = request.completion_limit
    if asked is None:
        if choices > cap:
            raise PermissionDeniedError(
                f"This token allows at most {cap} tokens per request: `n` may be at most {cap}.",
                param="n",
            )
        request.max_tokens = cap // choices
        body["max_tokens"] = request.max_tokens
    elif asked * choices > cap:
        raise PermissionDeniedError(
            f"This token allows at most {cap} tokens per request (`max_tokens` x `n` is "
            f"{asked * choices}).",
            param="max_tokens",
        )
