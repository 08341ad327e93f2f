"""The ``openai_compat`` provider: any OpenAI-compatible upstream over pooled aiohttp connections.

The client's body is forwarded as received (unknown fields included) with ``model`` replaced by
the upstream id; streams pass through chunk by chunk. The upstream key is injected by the
registry and only ever placed in the ``Authorization`` header; it is scrubbed from anything the
upstream echoes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from chatgate.config import OpenAICompatModelConfig
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatgateError,
    CompletionUsage,
    UpstreamError,
    UpstreamTimeoutError,
)
from chatgate.providers.base import Capabilities, ChatCall, ProviderState
from chatgate.providers.counting import counter_for
from chatgate.providers.session import upstream_session
from chatgate.providers.upstream import (
    broken,
    post_upstream,
    scrub_secret,
    stream_error,
    upstream_headers,
    upstream_id,
)

__all__ = ["OpenAICompatProvider"]

log = logging.getLogger("chatgate.providers.openai_compat")


class OpenAICompatProvider:
    capabilities = Capabilities(
        streaming=True, tools=True, response_format=True, logprobs=True, image_input=True
    )

    def __init__(self, config: OpenAICompatModelConfig, api_key: str | None):
        self._config = config
        self._api_key = api_key
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._upstream_model = config.upstream_model or config.name
        self._headers = upstream_headers(config.headers, api_key)
        self._session: aiohttp.ClientSession | None = None
        self._counter = counter_for(config.tokenizer, self._upstream_model)

    @property
    def state(self) -> ProviderState:
        return "ready" if self._session is not None else "loading"

    async def start(self) -> None:
        self._session = upstream_session(
            max_connections=self._config.max_connections,
            connect_timeout=self._config.connect_timeout,
            read_timeout=self._config.read_timeout,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def context_window(self) -> int | None:
        return self._config.context_window

    async def count_tokens(self, request: ChatCompletionRequest) -> int | None:
        return await self._counter.prompt(request)

    async def tokenize(
        self, prompt: str | ChatCompletionRequest, *, add_special_tokens: bool = True
    ) -> list[int] | None:
        if isinstance(prompt, str):  # OpenAI's encodings add no BOS
            return await self._counter.text(prompt)
        return await self._counter.prompt_ids(prompt)

    def _body(self, call: ChatCall) -> bytes:
        body = dict(call.body)
        body["model"] = self._upstream_model
        if body.get("stream"):
            # Always ask for usage so limits and metering count real tokens; the usage chunk is
            # passed on only if the client asked for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return orjson.dumps(body)

    async def _post(self, call: ChatCall, body: bytes | None = None) -> aiohttp.ClientResponse:
        if self._session is None:
            raise ChatgateError("The upstream client is not started.")
        headers = self._headers
        if self._config.request_id_header:
            headers = {
                **headers,
                self._config.request_id_header: call.client_request_id
                or upstream_id(call.request_id),
            }
        timeout = aiohttp.ClientTimeout(
            total=call.time_left(),
            sock_connect=self._config.connect_timeout,
            sock_read=self._config.read_timeout,
        )
        return await post_upstream(
            self._session,
            self._url,
            self._body(call) if body is None else body,
            headers=headers,
            client_timeout=timeout,
            name=self._config.name,
            scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._api_key)

    async def complete(self, call: ChatCall) -> ChatCompletion:
        result = await self._answer(call, self._body(call))
        wanted = call.request.choice_count
        choices = result.get("choices") or []
        if wanted > len(choices) >= 1:
            # The upstream ignored `n` (llama.cpp's server, Ollama): the missing choices come
            # from parallel calls of one choice each.
            extra = await asyncio.gather(
                *(
                    self._answer(call, self._one_choice(call, i))
                    for i in range(len(choices), wanted)
                )
            )
            result = _merged(result, extra)
        call.stats.upstream_model = result.get("model")
        call.stats.usage = result.get("usage")
        return result

    def _one_choice(self, call: ChatCall, index: int) -> bytes:
        body = dict(call.body, model=self._upstream_model, n=1)
        if isinstance(body.get("seed"), int):
            body["seed"] += index  # the same seed would give the same answer again
        return orjson.dumps(body)

    async def _answer(self, call: ChatCall, body: bytes) -> ChatCompletion:
        response = await self._post(call, body)
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeoutError("The upstream stopped answering.") from exc
        except aiohttp.ClientError as exc:
            raise broken(exc) from exc
        finally:
            response.release()
        try:
            result: ChatCompletion = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                "The upstream sent a body that is not JSON.", status=502, error_type="api_error"
            ) from exc
        return result

    async def stream(self, call: ChatCall) -> AsyncIterator[ChatCompletionChunk]:
        response = await self._post(call)
        finished = False
        client_wants_usage = call.request.include_usage_chunk
        written: list[str] = []  # the answer's text, counted if the upstream sends no usage
        last: dict[str, Any] | None = None
        try:
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue  # comments, event names, blank separators
                data = line[5:].strip()
                if data == b"[DONE]":
                    finished = True
                    break
                chunk: dict[str, Any] = orjson.loads(data)
                if "error" in chunk and "choices" not in chunk:
                    raise stream_error(chunk["error"], self._scrub)
                choices = chunk.get("choices") or ()
                finished = finished or any(c.get("finish_reason") for c in choices)
                for choice in choices:
                    _collect(choice.get("delta") or {}, written)
                if chunk.get("usage"):
                    call.stats.usage = chunk["usage"]
                last = chunk
                if not client_wants_usage:
                    chunk.pop("usage", None)
                    if not choices:
                        continue  # the usage-only chunk the client did not ask for
                yield chunk  # type: ignore[misc]
        except TimeoutError as exc:
            raise UpstreamTimeoutError("The upstream stopped streaming.") from exc
        except aiohttp.ClientError as exc:
            raise broken(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                "The upstream sent a malformed stream event.", status=502, error_type="api_error"
            ) from exc
        finally:
            response.release()
        if not finished:  # a clean end without [DONE] is accepted once the answer finished
            raise broken(None)
        if call.stats.usage is None:  # the upstream sent none: count what it was sent and said
            call.stats.usage = await self._counted(call, written)
            call.stats.usage_source = "gateway"
            if client_wants_usage and last is not None:
                yield {
                    "id": str(last.get("id") or ""),
                    "object": "chat.completion.chunk",
                    "created": int(last.get("created") or 0),
                    "model": str(last.get("model") or ""),
                    "choices": [],
                    "usage": call.stats.usage,
                }

    async def _counted(self, call: ChatCall, written: list[str]) -> CompletionUsage:
        prompt = await self.count_tokens(call.request) or 0
        completion = len(await self._counter.text("".join(written)))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


def _merged(first: ChatCompletion, others: list[ChatCompletion]) -> ChatCompletion:
    """One completion of every call's choices (indexed in order) and their usage summed: what
    the emulated ``n`` really used (each call read the prompt)."""
    choices = list(first.get("choices") or [])
    for other in others:
        for choice in other.get("choices") or []:
            choices.append({**choice, "index": len(choices)})
    merged: ChatCompletion = {**first, "choices": choices}
    usages = [u for u in (c.get("usage") for c in (first, *others)) if u]
    if usages:
        prompt = sum(u["prompt_tokens"] for u in usages)
        completion = sum(u["completion_tokens"] for u in usages)
        merged["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return merged


def _collect(delta: dict[str, Any], written: list[str]) -> None:
    """The text a stream's delta adds (content, refusal, tool-call names and arguments)."""
    for field in ("content", "refusal"):
        value = delta.get(field)
        if isinstance(value, str):
            written.append(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") or {}
        for field in ("name", "arguments"):
            value = function.get(field)
            if isinstance(value, str):
                written.append(value)
