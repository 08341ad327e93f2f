"""A fake OpenAI-compatible upstream *server* (a test fixture, not product code).

Its behaviour is chosen by the ``model`` the gateway sends upstream:

- ``echo``: answers with the last user message; streams it in three chunks.
- ``error-400`` / ``error-500``: OpenAI-shaped errors with that status.
- ``error-401-echo-key``: a 401 whose message repeats the Authorization header it got.
- ``picky``: like ``echo``, but a request with a ``json_schema`` response format gets a 500 whose
  message is a Python traceback ending in a ``ValueError`` (as llama.cpp's server answers one).
- ``empty-400``: a 400 with an empty body.
- ``no-usage``: like ``echo``, but its streams never carry usage, asked or not (as older vLLM,
  Ollama and llama.cpp's server do).
- ``masked-key``: a 400 whose message shows the key it got in masked forms, as OpenAI's do
  (``sk-upstr**************6789``, ``sk-upstr...789``).
- ``slow``: never answers (for read timeouts).
- ``stream-drop``: two chunks, then the connection is cut.
- ``stream-error``: one chunk, then an SSE ``error`` event.
- ``not-json``: a 200 with an HTML body.
- ``stream-no-done``: a complete stream that ends without ``[DONE]``.
- ``hold``: answers (like ``echo``) only after ``POST /control/release``.
- ``flaky-K-…``: the first K requests get a 503, later ones are answered like ``echo``.
- ``throttle-K-…``: the first K get a 429 with ``retry-after-ms: 300``, then ``echo``.
- ``reset-K-…``: the first K have their connection reset, then ``echo``.
- ``sleep-S-…``: waits S seconds before answering (streams: before the first chunk).
- ``drip-MS-…``: streams the last user message word by word, MS milliseconds apart (usage at
  the end when asked); ``drips`` counts ``started``, ``finished`` and ``cancelled`` (the client
  went away mid-stream) and ``drip_sent`` the chunks each stream got out. ``gate(model)`` makes
  that model's drips wait for ``release_words(model, n)`` before each word instead (a test then
  sees each word arrive, however busy the machine), until ``ungate(model)``.
Any other model is answered like ``echo``.

- ``chaos-…``: a fault drawn at random per request from ``faults`` (kind → probability, seeded):
  ``429`` (with ``retry-after-ms: 5``), ``500``, ``reset`` (connection closed before an answer),
  ``timeout`` (no answer for ``stall`` seconds), ``drop`` (cut mid-body: half a JSON answer, or
  a stream after two chunks); otherwise answered like ``echo``. ``injected`` counts each kind.

Every request's upstream model is appended to ``arrivals`` as it arrives.
- ``set-cookie``: like ``echo``, and sets a cookie (as load balancers in front of APIs do).
- ``stream-cut-clean``: two chunks, then a clean end with no finish and no ``[DONE]``.

``POST /v1/moderations`` flags ``violence`` in any input containing ``flag-me``.
``POST /v1/embeddings`` answers 8-wide vectors derived from each input (in reverse order: the
``index`` fields say which is which).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _closing: asyncio.Event | None = None
    _release: asyncio.Event | None = None
    arrivals: list[str] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)
    """Arrival times (monotonic) per upstream model."""
    faults: dict[str, float] = field(default_factory=dict)
    """For ``chaos-*`` models: fault kind → probability."""
    stall: float = 30.0
    rng: random.Random = field(default_factory=lambda: random.Random(20261125))
    injected: Counter[str] = field(default_factory=Counter)
    drips: Counter[str] = field(default_factory=Counter)
    drip_sent: list[int] = field(default_factory=list)
    _gates: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def _draw(self) -> str | None:
        roll = self.rng.random()
        for kind, probability in self.faults.items():
            if roll < probability:
                self.injected[kind] += 1
                return kind
            roll -= probability
        return None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._closing = asyncio.Event()
            self._release = asyncio.Event()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/moderations", self._moderations)
            app.router.add_post("/v1/embeddings", self._embeddings)
            app.router.add_post("/control/release", self._release_held)
            self._runner = web.AppRunner(app, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)

    def _on_loop(self, action: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(_call(action), self._loop).result(10)

    def gate(self, model: str) -> None:
        """``model``'s drips send a word only when :meth:`release_words` lets them."""
        self._on_loop(lambda: self._gates.setdefault(model, asyncio.Semaphore(0)))

    def release_words(self, model: str, count: int = 1) -> None:
        def release() -> None:
            for _ in range(count):
                self._gates[model].release()

        self._on_loop(release)

    def ungate(self, model: str) -> None:
        """Back to timed drips; a drip waiting at the gate goes on at once."""

        def open_gate() -> None:
            gate = self._gates.pop(model)
            for _ in range(100):  # more than there are drips waiting at it
                gate.release()

        self._on_loop(open_gate)

    def stop(self) -> None:
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers, body))
        model = body.get("model", "")
        self.arrivals.append(f"{model}:{_last_user_text(body)}")
        seen = self.times.setdefault(model, [])
        seen.append(time.monotonic())
        kind, _, rest = model.partition("-")
        count = rest.split("-")[0]
        if kind in ("flaky", "throttle", "reset") and count.isdigit() and len(seen) <= int(count):
            return _first_failures(request, kind)
        if kind == "sleep":
            await asyncio.sleep(float(count))
        if kind == "drip" and body.get("stream"):
            return await self._drip(request, model, _last_user_text(body), body, int(count))
        fault = self._draw() if kind == "chaos" else None
        if fault == "429":
            response = _error(429, "fake rate limit", "rate_limit_error")
            response.headers["retry-after-ms"] = "5"
            return response
        if fault == "500":
            return _error(500, "fake upstream failure", "server_error")
        if fault == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if fault == "timeout":
            await asyncio.sleep(self.stall)
        if fault == "drop" and body.get("stream"):
            self.injected["drop-stream"] += 1
        if fault == "drop" and not body.get("stream"):
            return await _cut_json(request, _completion(model, _last_user_text(body)))
        if model == "hold":
            assert self._release is not None
            await self._release.wait()
            self._release.clear()
        if model.startswith("error-401"):
            key = request.headers.get("Authorization", "")
            return _error(401, f"Incorrect API key provided: {key}", "invalid_request_error")
        if model == "picky" and (body.get("response_format") or {}).get("type") == "json_schema":
            trace = (
                "Traceback (most recent call last):\n"
                '  File "/srv/engine/llama_cpp/server/app.py", line 411, in create\n'
                "ValueError: unsupported schema keyword"
            )
            return _error(500, trace, "internal_server_error")
        if model == "empty-400":
            return web.Response(status=400)
        if model == "masked-key":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            masked = f"{key[:8]}{'*' * 14}{key[-4:]} (also {key[:8]}...{key[-3:]})"
            return _error(400, f"Key {masked} is not allowed here", "invalid_request_error")
        if model.startswith("error-"):
            status = int(model.split("-")[1])
            kind = "invalid_request_error" if status < 500 else "server_error"
            return _error(status, f"fake upstream error {status}", kind, param="messages")
        if model == "slow":
            assert self._closing is not None
            await self._closing.wait()  # until the fake shuts down
        if model == "not-json":
            return web.Response(text="<html>bad gateway</html>", content_type="text/html")
        text = _last_user_text(body)
        if not body.get("stream"):
            response = web.json_response(_completion(model, text))
            if model == "set-cookie":  # as load balancers in front of real APIs do
                response.set_cookie("__lb_affinity", f"for-{text}", path="/")
            return response
        return await self._stream(request, model, text, body, drop=fault == "drop")

    async def _moderations(self, request: web.Request) -> web.Response:
        """A moderation model that flags ``violence`` in any input containing ``flag-me``."""
        body = await request.json()
        self.received.append(Received(dict(request.headers), body))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for text in inputs:
            hit = "flag-me" in str(text)
            results.append(
                {
                    "flagged": hit,
                    "categories": {"violence": hit, "hate": False},
                    "category_scores": {"violence": 0.97 if hit else 0.01, "hate": 0.0},
                }
            )
        return web.json_response({"id": "modr-fake", "model": body["model"], "results": results})

    async def _embeddings(self, request: web.Request) -> web.Response:
        """8-wide vectors derived from each input's text (token arrays: their ids); honours
        ``encoding_format``; model ``error-400`` answers 400."""
        body = await request.json()
        self.received.append(Received(dict(request.headers), body))
        if body["model"] == "error-400":
            return _error(400, "fake embeddings refused this", "invalid_request_error", "input")
        raw = body["input"]
        inputs = raw if isinstance(raw, list) and not isinstance(raw[0], int) else [raw]
        data = []
        for index, item in enumerate(inputs):
            seed = str(item).encode()
            vector = [((b * (i + 1)) % 97) / 97 for i, b in enumerate(seed[:8].ljust(8, b"-"))]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack("<8f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(i).split()) for i in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(
            {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        )

    async def _release_held(self, request: web.Request) -> web.Response:
        assert self._release is not None
        self._release.set()
        return web.json_response({"released": True})

    async def _drip(
        self, request: web.Request, model: str, text: str, body: dict[str, Any], delay_ms: int
    ) -> web.StreamResponse:
        self.drips["started"] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sent = 0
        try:
            await response.write(_sse(_chunk(model, {"role": "assistant", "content": ""})))
            for word in re.findall(r"\s*\S+", text):
                gate = self._gates.get(model)
                if gate is not None:
                    await gate.acquire()
                else:
                    await asyncio.sleep(delay_ms / 1000)
                await response.write(_sse(_chunk(model, {"content": word})))
                sent += 1
            await response.write(_sse(_chunk(model, {}, finish="stop")))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = _usage(text)
                await response.write(_sse({**_chunk(model, {}), "choices": [], "usage": usage}))
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.drips["cancelled"] += 1
            self.drip_sent.append(sent)
            raise
        self.drips["finished"] += 1
        self.drip_sent.append(sent)
        return response

    async def _stream(
        self, request: web.Request, model: str, text: str, body: dict[str, Any], drop: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [text[: len(text) // 3], text[len(text) // 3 : 2 * len(text) // 3]]
        pieces.append(text[2 * len(text) // 3 :])
        await response.write(_sse(_chunk(model, {"role": "assistant", "content": ""})))
        for i, piece in enumerate(pieces):
            if model == "stream-cut-clean" and i == 2:
                await response.write_eof()
                return response
            if (model == "stream-drop" or drop) and i == 2:
                assert request.transport is not None
                request.transport.close()
                return response
            if model == "stream-error" and i == 1:
                error = {"error": {"message": "fake failure mid-stream", "type": "server_error"}}
                await response.write(_sse(error))
                await response.write(b"data: [DONE]\n\n")
                return response
            await response.write(_sse(_chunk(model, {"content": piece})))
        await response.write(_sse(_chunk(model, {}, finish="stop")))
        if (body.get("stream_options") or {}).get("include_usage") and model != "no-usage":
            usage = _usage(text)
            await response.write(_sse({**_chunk(model, {}), "choices": [], "usage": usage}))
        if model != "stream-no-done":
            await response.write(b"data: [DONE]\n\n")
        return response


def _first_failures(request: web.Request, kind: str) -> web.Response:
    """``flaky``: 503; ``throttle``: 429 with a retry-after; ``reset``: the connection is cut."""
    if kind == "flaky":
        return _error(503, "fake upstream overloaded", "server_error")
    if kind == "throttle":
        response = _error(429, "fake rate limit", "rate_limit_error")
        response.headers["retry-after-ms"] = "300"
        response.headers["retry-after"] = "1"
        return response
    assert request.transport is not None
    request.transport.close()
    return web.Response()


async def _cut_json(request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
    """Promise the whole JSON body, send half of it, cut the connection."""
    data = json.dumps(payload).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    assert request.transport is not None
    request.transport.close()
    return response


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _usage(text: str) -> dict[str, int]:
    n = max(1, len(text.split()))
    return {"prompt_tokens": n, "completion_tokens": n, "total_tokens": 2 * n}


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(text),
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(body, status=status)


def chaos_config(base_url: str) -> str:
    """Gateway config for the fault run: `chaos-primary` falls back to `chaos-secondary`, both
    on this fake; retries with short backoffs, a short read timeout, a tolerant breaker."""
    models = "\n".join(
        f"  - name: chaos-{name}\n"
        "    provider: openai_compat\n"
        f"    base_url: {base_url}\n"
        "    read_timeout: 0.5\n" + (f"    fallbacks: [chaos-{fallback}]\n" if fallback else "")
        for name, fallback in (("primary", "secondary"), ("secondary", None))
    )
    return (
        "routing:\n  retries: 4\n  backoff_initial: 0.01\n  backoff_max: 0.05\n"
        "  breaker_failures: 10\n  breaker_cooldown: 0.5\n"
        f"models:\n{models}"
    )


async def _call(action: Any) -> None:
    action()
