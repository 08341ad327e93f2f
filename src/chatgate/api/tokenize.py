"""``POST /tokenize``: tokens with the model's own tokenizer, in vLLM's shape (the name vLLM and
llama.cpp server use). The body is vLLM's: ``{"model", "prompt"}`` for a plain text, or a chat
request (``{"model", "messages", ...}``) for its prompt as the model sees it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate
from chatgate.api.render import json_response
from chatgate.gateway import Authenticator, ModelRegistry
from chatgate.protocol import (
    ChatCompletionRequest,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
    TokenizePromptRequest,
    TokenizeResponse,
    parse_json_object,
    validate,
)

__all__ = ["TokenizeEndpoint"]


def _parse(body: dict[str, Any]) -> TokenizePromptRequest | ChatCompletionRequest:
    if "prompt" in body and "messages" in body:
        raise InvalidRequestError(
            "Give either 'prompt' (a text) or 'messages' (a chat), not both.", param="prompt"
        )
    if "prompt" in body:
        return validate(TokenizePromptRequest, body)
    return validate(ChatCompletionRequest, body)


class TokenizeEndpoint:
    def __init__(self, registry: ModelRegistry, authenticator: Authenticator):
        self._registry = registry
        self._auth = authenticator

    async def count(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "tokenize")
        parsed = _parse(parse_json_object(await request.body()))
        model = self._registry.resolve(parsed.model)
        if not principal.may_use_model(model.name, model.aliases):
            raise ModelNotFoundError(parsed.model)
        provider = model.provider
        if isinstance(parsed, TokenizePromptRequest):
            tokens = await provider.tokenize(
                parsed.prompt, add_special_tokens=parsed.add_special_tokens
            )
            count = None if tokens is None else len(tokens)
        else:
            tokens = await provider.tokenize(parsed)
            count = len(tokens) if tokens is not None else await provider.count_tokens(parsed)
        if count is None:
            raise ServiceUnavailableError(f"No tokenizer is known for `{model.name}`.")
        body: TokenizeResponse = {
            "object": "chatgate.tokenize",
            "model": model.name,
            "count": count,
            "max_model_len": provider.context_window(),
            "tokens": tokens,
        }
        return json_response(body)
