"""``POST /tokenize``: prompt tokens of a chat request with the model's own tokenizer (the name
vLLM and llama.cpp server use)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.gateway import Authenticator, ModelRegistry
from chatgate.protocol import (
    ChatCompletionRequest,
    ModelNotFoundError,
    ServiceUnavailableError,
    parse_json_object,
    validate,
)

__all__ = ["TokenizeEndpoint"]


class TokenizeEndpoint:
    def __init__(self, registry: ModelRegistry, authenticator: Authenticator):
        self._registry = registry
        self._auth = authenticator

    async def count(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "tokenize")
        chat = validate(ChatCompletionRequest, parse_json_object(await request.body()))
        model = self._registry.resolve(chat.model)
        if not principal.may_use_model(model.name):
            raise ModelNotFoundError(chat.model)
        count = await model.provider.count_tokens(chat)
        if count is None:
            raise ServiceUnavailableError(f"No tokenizer is known for `{model.name}`.")
        body = {
            "object": "chatgate.tokenize",
            "model": model.name,
            "count": count,
            "max_model_len": model.provider.context_window(),
        }
        return Response(orjson.dumps(body), media_type="application/json")
