"""The ``openai_compat`` provider: any OpenAI-compatible upstream over pooled aiohttp connections.

The client's body is forwarded as received (unknown fields included) with ``model`` replaced by
the upstream id; streams pass through chunk by chunk. The upstream key is injected by the
registry and only ever placed in the ``Authorization`` header; it is scrubbed from anything the
upstream echoes back. What the engine behind it does not honour is emulated where that is sound
(``n`` as parallel calls of one choice, merged; ``tool_choice: "required"`` with one tool as the
named choice; usage counted when a stream sends none) and refused with a 400 naming the
parameter where it is not.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import orjson

from chatgate.config import OpenAICompatModelConfig
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatgateError,
    CompletionUsage,
    UnsupportedParameterError,
    UpstreamError,
    UpstreamTimeoutError,
)
from chatgate.protocol.chat import NamedToolChoice
from chatgate.providers.base import Capabilities, ChatCall, ProviderState
from chatgate.providers.discovery import UpstreamEngine
from chatgate.providers.session import upstream_session
from chatgate.providers.upstream import (
    broken,
    post_upstream,
    scrub_secret,
    upstream_headers,
    upstream_id,
    window_in,
)
from chatgate.providers.upstream_stream import Tally, events, in_turn, interleave

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
        self._engine = UpstreamEngine(config, self._headers, self._upstream_model)

    @property
    def state(self) -> ProviderState:
        return "ready" if self._session is not None else "loading"

    async def start(self) -> None:
        self._session = upstream_session(
            max_connections=self._config.max_connections,
            connect_timeout=self._config.connect_timeout,
            read_timeout=self._config.read_timeout,
        )
        await self._engine.start(self._session)

    async def close(self) -> None:
        await self._engine.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def context_window(self) -> int | None:
        return self._engine.context_window()

    async def count_tokens(self, request: ChatCompletionRequest) -> int | None:
        return await self._engine.counter.prompt(request)

    async def tokenize(
        self, prompt: str | ChatCompletionRequest, *, add_special_tokens: bool = True
    ) -> list[int] | None:
        if isinstance(prompt, str):  # OpenAI's encodings add no BOS
            return await self._engine.counter.text(prompt)
        return await self._engine.counter.prompt_ids(prompt)

    def _adapted(self, call: ChatCall) -> dict[str, Any]:
        """The body sent upstream: the client's, for the upstream model, with what the engine
        does not honour emulated or refused."""
        body = dict(call.body)
        body["model"] = self._upstream_model
        request = call.request
        engine = self._engine
        if engine.kind != "unknown" and any(m.role == "developer" for m in request.messages):
            # Open models' chat templates know `system`, which is what `developer` means.
            body["messages"] = [
                {**m, "role": "system"} if m.get("role") == "developer" else m
                for m in body.get("messages") or ()
            ]
        if request.tool_choice == "required" and not engine.honours("tool_choice_required"):
            tools = request.tools or []
            if len(tools) == 1 and engine.honours("tool_choice_named"):
                # One tool: "required" is exactly the named choice of that tool.
                name = tools[0].function.name
                body["tool_choice"] = {"type": "function", "function": {"name": name}}
            else:
                raise self._unsupported(
                    'tool_choice: "required" with several tools', "tool_choice_required"
                )
        elif isinstance(request.tool_choice, NamedToolChoice) and not engine.honours(
            "tool_choice_named"
        ):
            raise self._unsupported("a named tool_choice", "tool_choice_named")
        return body

    def _unsupported(self, what: str, capability: str) -> UnsupportedParameterError:
        return UnsupportedParameterError(
            f"The upstream serving `{self._config.name}` ({self._engine.kind}) does not honour "
            f'{what}. Use `tool_choice: "auto"`, or set `capabilities.{capability}: true` '
            "for this model if it does.",
            param="tool_choice",
        )

    def _body(self, call: ChatCall, *, choice: int | None = None) -> bytes:
        """The upstream body; ``choice``: one call of ``n`` asked one choice at a time."""
        body = self._adapted(call)
        if choice is not None:
            body["n"] = 1
            if isinstance(body.get("seed"), int):
                body["seed"] += choice  # the same seed would give the same answer again
        if body.get("stream"):
            # Always ask for usage so limits and metering count real tokens; the usage chunk is
            # passed on only if the client asked for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return orjson.dumps(body)

    async def _post(self, call: ChatCall, body: bytes) -> aiohttp.ClientResponse:
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
        try:
            return await post_upstream(
                self._session,
                self._url,
                body,
                headers=headers,
                client_timeout=timeout,
                name=self._config.name,
                scrub=self._scrub,
            )
        except UpstreamError as exc:
            self._engine.learn(exc)
            raise

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._api_key)

    def _emulates_n(self, call: ChatCall) -> bool:
        return call.request.choice_count > 1 and not self._engine.honours("n")

    async def complete(self, call: ChatCall) -> ChatCompletion:
        wanted = call.request.choice_count
        if self._emulates_n(call):
            answers = await asyncio.gather(
                *(self._answer(call, self._body(call, choice=i)) for i in range(wanted))
            )
            result = _merged(answers[0], list(answers[1:]))
        else:
            result = await self._answer(call, self._body(call))
            choices = result.get("choices") or []
            if wanted > len(choices) >= 1:
                # The upstream ignored `n` unannounced: the missing choices come from parallel
                # calls of one choice each.
                extra = await asyncio.gather(
                    *(
                        self._answer(call, self._body(call, choice=i))
                        for i in range(len(choices), wanted)
                    )
                )
                result = _merged(result, extra)
        if call.request.top_logprobs is not None:
            for choice in result.get("choices") or ():
                _trim_logprobs(cast(dict[str, Any], choice), call.request.top_logprobs)
        call.stats.upstream_model = result.get("model")
        call.stats.usage = result.get("usage")
        return result

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

    async def _events(
        self, call: ChatCall, body: bytes, tally: Tally
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in events(await self._post(call, body), tally, self._scrub):
            yield chunk

    async def _diagnose(self, call: ChatCall) -> None:
        """A stream the engine dropped before its first chunk: llama-cpp-python's server answers
        a request it refuses (a prompt over its context) with a 200 and then closes. Asked again
        for one token, unstreamed, it says why — and that refusal is the answer (not retried,
        not counted against the upstream's health)."""
        if self._engine.kind != "llama-cpp-python":
            return
        body = self._adapted(call)
        body.update(stream=False, max_tokens=1, n=1)
        body.pop("stream_options", None)
        body.pop("max_completion_tokens", None)
        for _ in range(3):  # the engine may have closed the pooled connections it held
            try:
                (await self._post(call, orjson.dumps(body))).release()
                return
            except UpstreamError as exc:
                if exc.deterministic:
                    raise _as_asked(exc) from None
                if exc.code != "upstream_unreachable":
                    return

    async def stream(self, call: ChatCall) -> AsyncIterator[ChatCompletionChunk]:
        wanted = call.request.choice_count
        emulated = self._emulates_n(call)
        tallies = [Tally() for _ in range(wanted if emulated else 1)]
        shape = _Shaping(call.request.include_usage_chunk, call.request.top_logprobs, emulated)
        try:
            if emulated:
                # llama-cpp-python's server serves one request at a time and cuts a stream
                # short when another arrives: its choices are asked for in turn.
                merge = in_turn if self._engine.kind == "llama-cpp-python" else interleave
                streams = [
                    self._events(call, self._body(call, choice=i), tally)
                    for i, tally in enumerate(tallies)
                ]
                async for index, chunk in merge(streams):
                    if shape(chunk, index):
                        yield chunk  # type: ignore[misc]
            else:
                response = await self._post(call, self._body(call))
                async for chunk in events(response, tallies[0], self._scrub):
                    if shape(chunk, 0):
                        yield chunk  # type: ignore[misc]
        except UpstreamError as exc:
            if exc.code == "upstream_disconnected" and not any(t.written for t in tallies):
                await self._diagnose(call)  # raises the engine's refusal, if that is what it was
            raise
        counted = any(t.usage is None for t in tallies)
        # The prompt is counted once, however many of the calls sent no usage.
        prompt = (await self.count_tokens(call.request) or 0) if counted else 0
        usages = [t.usage or await self._counted(prompt, t) for t in tallies]
        call.stats.usage = _summed(usages) if len(usages) > 1 else usages[0]
        if counted:
            call.stats.usage_source = "gateway"
        head = shape.head
        if shape.wants_usage and head is not None and (emulated or counted):
            yield {
                "id": str(head.get("id") or ""),
                "object": "chat.completion.chunk",
                "created": int(head.get("created") or 0),
                "model": str(head.get("model") or ""),
                "choices": [],
                "usage": call.stats.usage,
            }

    async def _counted(self, prompt: int, tally: Tally) -> CompletionUsage:
        """A stream's usage when the upstream sent none: the prompt as it was counted, the
        answer's text with the model's tokenizer."""
        completion = len(await self._engine.counter.text("".join(tally.written)))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


class _Shaping:
    """What becomes of each upstream chunk on its way to the client: ``top_logprobs`` trimmed,
    merged choices re-indexed under the first chunk's id, usage chunks kept for the client that
    asked (or, for merged streams, summed at the end). Called per chunk; False: drop it."""

    def __init__(self, wants_usage: bool, top: int | None, merged: bool):
        self.wants_usage = wants_usage
        self._top = top
        self._merged = merged
        self.head: dict[str, Any] | None = None
        """The first chunk: its id and time name the stream."""

    def __call__(self, chunk: dict[str, Any], index: int) -> bool:
        choices = chunk.get("choices") or ()
        if self.head is None:
            self.head = chunk
        if self._top is not None:
            for choice in choices:
                _trim_logprobs(choice, self._top)
        if self._merged:
            chunk["id"], chunk["created"] = self.head.get("id"), self.head.get("created")
            for choice in choices:
                choice["index"] = index
            chunk.pop("usage", None)  # one usage chunk, summed, at the end
            return bool(choices)
        if not self.wants_usage:
            chunk.pop("usage", None)
            return bool(choices)  # the usage-only chunk the client did not ask for
        return True


_IN_MESSAGES = re.compile(r"(\d+) in the messages")


def _as_asked(error: UpstreamError) -> UpstreamError:
    """The refusal of the one-token question, worded for the request the client sent (whose
    completion limit was not one token)."""
    window, prompt = window_in(error.message), _IN_MESSAGES.search(error.message)
    if error.code != "context_length_exceeded" or window is None or prompt is None:
        return error
    return UpstreamError(
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {prompt.group(1)} tokens. Please reduce the length of the messages.",
        status=400,
        error_type="invalid_request_error",
        param="messages",
        code="context_length_exceeded",
        deterministic=True,
    )


def _trim_logprobs(choice: dict[str, Any], top: int) -> None:
    """At most ``top`` alternatives per token, the likeliest, as OpenAI answers
    (llama-cpp-python adds the sampled token to its top ``top``)."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return
    for field in ("content", "refusal"):
        for token in logprobs.get(field) or ():
            alternatives = token.get("top_logprobs")
            if isinstance(alternatives, list) and len(alternatives) > top:
                alternatives.sort(key=lambda a: a.get("logprob", float("-inf")), reverse=True)
                del alternatives[top:]


def _summed(usages: list[CompletionUsage]) -> CompletionUsage:
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
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
        merged["usage"] = _summed(usages)
    return merged
