"""The ``openai_compat`` provider: any OpenAI-compatible upstream over pooled aiohttp connections.

The client's body is forwarded as received (unknown fields included) with ``model`` replaced by
the upstream id; streams pass through chunk by chunk. The upstream key is injected by the
registry and only ever placed in the ``Authorization`` header; it is scrubbed from anything the
upstream echoes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
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
from chatgate.providers.session import upstream_session
from chatgate.tokenizers import (
    OFF_LOOP_CHARS,
    chat_tokens,
    encode_text,
    encoding_for,
    encoding_name_for,
    off_loop,
)

__all__ = [
    "OpenAICompatProvider",
    "post_upstream",
    "scrub_secret",
    "upstream_headers",
    "upstream_id",
]

log = logging.getLogger("chatgate.providers.openai_compat")

_MAX_ERROR_BYTES = 64 * 1024


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
        self._encoder = encoding_for(config.tokenizer or encoding_name_for(self._upstream_model))

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
        if request.rough_prompt_tokens() * 4 < OFF_LOOP_CHARS:
            return chat_tokens(self._encoder, request)
        return await asyncio.to_thread(chat_tokens, self._encoder, request)

    async def tokenize(
        self, prompt: str | ChatCompletionRequest, *, add_special_tokens: bool = True
    ) -> list[int] | None:
        if isinstance(prompt, str):  # OpenAI's encodings add no BOS
            return await off_loop(self._encode, prompt)
        return None  # OpenAI's chat framing tokens have no published ids; the count is exact

    def _encode(self, text: str) -> list[int]:
        return encode_text(self._encoder, text)

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
            raise _broken(exc) from exc
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
                    raise _stream_error(chunk["error"], self._scrub)
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
            raise _broken(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                "The upstream sent a malformed stream event.", status=502, error_type="api_error"
            ) from exc
        finally:
            response.release()
        if not finished:  # a clean end without [DONE] is accepted once the answer finished
            raise _broken(None)
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
        completion = len(await off_loop(self._encode, "".join(written)))
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


def upstream_headers(extra: dict[str, str], api_key: str | None) -> dict[str, str]:
    """Headers for every call to an upstream: config's extras, JSON, and the gateway's key."""
    headers = {**extra, "Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def upstream_id(request_id: str) -> str:
    """The request's id as a UUID (engines such as llama.cpp's server refuse any other form):
    the gateway's 128-bit id in UUID form (version 4), so the two can be matched; other ids
    (batch lines') by a name-based UUID."""
    digits = request_id.removeprefix("req_")
    if len(digits) == 32:
        with contextlib.suppress(ValueError):
            return str(uuid.UUID(hex=digits, version=4))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, request_id))


def scrub_secret(text: str, secret: str | None) -> str:
    """``text`` with the gateway's upstream key masked (upstreams echo what they received) —
    whole, or in a masked form that still shows parts of it (``sk-proj****...6789``,
    ``sk-upstr...789``, as OpenAI's error messages do)."""
    if not secret:
        return text
    if secret in text:
        text = text.replace(secret, "***")
    if len(secret) >= 8 and secret[:4] in text:
        text = _masked(secret[:4]).sub("***", text)
    return text


@functools.lru_cache(maxsize=16)
def _masked(prefix: str) -> re.Pattern[str]:
    """A key's masked forms: its first characters, maybe more of it, a mask (``*``, ``...``,
    ``…``), maybe its last characters."""
    return re.compile(re.escape(prefix) + r"[\w-]{0,60}(?:\*+|\.{2,}|…)+[\w-]{0,16}")


async def post_upstream(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    *,
    headers: dict[str, str],
    client_timeout: aiohttp.ClientTimeout,
    name: str,
    scrub: Callable[[str], str],
) -> aiohttp.ClientResponse:
    """POST to an upstream; transport failures and error statuses become ``ChatgateError``s
    (the upstream's message scrubbed of the gateway's key)."""
    try:
        response = await session.post(url, data=data, headers=headers, timeout=client_timeout)
    except TimeoutError as exc:
        raise UpstreamTimeoutError(f"The upstream for `{name}` did not answer in time.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(
            f"The upstream for `{name}` is unreachable ({type(exc).__name__}).",
            status=502,
            error_type="api_error",
            code="upstream_unreachable",
        ) from exc
    if response.status >= 400:
        try:
            raise await _upstream_error(response, name, scrub)
        finally:
            response.release()
    return response


async def _upstream_error(
    response: aiohttp.ClientResponse, name: str, scrub: Callable[[str], str]
) -> UpstreamError:
    raw = await response.content.read(_MAX_ERROR_BYTES)
    text = scrub(raw.decode("utf-8", "replace")).strip()
    message, error_type, param, code = text, None, None, None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        message = scrub(str(error.get("message") or "")).strip()
        error_type = _str_or_none(error.get("type"))
        param = _str_or_none(error.get("param"))
        code = _str_or_none(error.get("code"))
    elif isinstance(payload, dict) and isinstance(payload.get("detail"), str):
        message = scrub(payload["detail"]).strip()  # FastAPI-style engines (vLLM, llama.cpp)
    status = response.status
    if status in (401, 403):
        # The client's credentials to chatgate were fine: this is the gateway's own key.
        log.error("upstream %s rejected chatgate's key (%s)", name, status)
        return UpstreamError(
            f"The upstream for `{name}` rejected the gateway's credentials.",
            status=502,
            error_type="api_error",
            code="upstream_auth_failed",
        )
    if status >= 500:
        # The whole answer goes to the log; the client is not shown an engine's internals
        # (tracebacks, file paths).
        log.warning("upstream %s answered %s: %s", name, status, (message or text)[:4000])
        invalid = status == 500 and _refused_as_invalid(message or text, error_type)
        return UpstreamError(
            f"The upstream for `{name}` failed ({status}"
            + (f", {code}" if code else "")
            + ")."
            + (
                " It could not process this request; sending it again will not help."
                if invalid
                else ""
            ),
            status=status,
            error_type=error_type if error_type and not invalid else None,
            code=code,
            retry_after=_retry_after(response),
            deterministic=invalid,
        )
    if not message:
        message = (
            f"The upstream for `{name}` answered {status} {response.reason or ''} with no message."
        )
    elif payload is None:
        message = f"The upstream for `{name}` answered {status}: {message[:300]}"
    return UpstreamError(
        message,
        status=status,
        error_type=error_type,
        param=param,
        code=code,
        retry_after=_retry_after(response),
        deterministic=status not in (408, 429),
    )


_INVALID = re.compile(
    r"\b(?:ValueError|TypeError|KeyError|IndexError|ValidationError|JSONDecodeError|"
    r"NotImplementedError|validation error|not supported|unsupported|invalid)\b",
    re.IGNORECASE,
)


def _refused_as_invalid(message: str, error_type: str | None) -> bool:
    """Does a 500 report that the request itself could not be processed (an engine's validation
    error surfacing as a 500), rather than that the engine is unwell?"""
    if error_type in ("invalid_request_error", "BadRequestError", "ValidationError"):
        return True
    return bool(_INVALID.search(message))


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """The upstream's ``retry-after-ms`` or ``retry-after`` (seconds), if sane."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare from APIs, ignored
        if 0 <= seconds <= 3600:
            return seconds
    return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _broken(exc: BaseException | None) -> UpstreamError:
    reason = f" ({type(exc).__name__})" if exc is not None else ""
    return UpstreamError(
        f"The upstream connection broke before the response ended{reason}.",
        status=502,
        error_type="api_error",
        code="upstream_disconnected",
    )


def _stream_error(error: Any, scrub: Any) -> UpstreamError:
    info = error if isinstance(error, dict) else {"message": str(error)}
    return UpstreamError(
        scrub(str(info.get("message") or "The upstream reported an error.")),
        status=502,
        error_type=_str_or_none(info.get("type")) or "api_error",
        param=_str_or_none(info.get("param")),
        code=_str_or_none(info.get("code")),
    )
