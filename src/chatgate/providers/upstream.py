"""Talking to an OpenAI-compatible upstream over HTTP: the headers every call carries (the
gateway's key, the request's id as a UUID), POSTs whose failures become ``ChatgateError``s —
classified as transient or as a refusal of the request itself, 5xx messages without an engine's
internals, empty bodies named by status —, and the key scrubbed from anything echoed back."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from chatgate.protocol import UpstreamError, UpstreamTimeoutError

__all__ = [
    "broken",
    "post_upstream",
    "scrub_secret",
    "stream_error",
    "upstream_headers",
    "upstream_id",
    "window_in",
]

log = logging.getLogger("chatgate.providers.openai_compat")

_MAX_ERROR_BYTES = 64 * 1024


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
    if window_in(message) is not None or error_type == "exceed_context_size_error":
        # vLLM and llama-cpp-python say it in OpenAI's words, llama.cpp by its type; their codes
        # differ from OpenAI's.
        code, param = "context_length_exceeded", param or "messages"
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


_WINDOW = re.compile(r"maximum context length is (\d+) tokens")


def window_in(message: str) -> int | None:
    """The context window an engine's refusal names ("This model's maximum context length is N
    tokens", as OpenAI, vLLM and llama-cpp-python word it)."""
    found = _WINDOW.search(message)
    return int(found.group(1)) if found else None


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


def broken(exc: BaseException | None) -> UpstreamError:
    reason = f" ({type(exc).__name__})" if exc is not None else ""
    return UpstreamError(
        f"The upstream connection broke before the response ended{reason}.",
        status=502,
        error_type="api_error",
        code="upstream_disconnected",
    )


def stream_error(error: Any, scrub: Any) -> UpstreamError:
    info = error if isinstance(error, dict) else {"message": str(error)}
    return UpstreamError(
        scrub(str(info.get("message") or "The upstream reported an error.")),
        status=502,
        error_type=_str_or_none(info.get("type")) or "api_error",
        param=_str_or_none(info.get("param")),
        code=_str_or_none(info.get("code")),
    )
