"""Fake inference engines at the edge, for the engines that cannot run here (vLLM needs a GPU
build; llama.cpp's C++ server and Ollama are not on PyPI or in Debian 12): each answers the
endpoints its documentation and source describe, with the shapes they use —

- ``vllm``: ``/v1/models`` entries with ``max_model_len``; ``/tokenize`` with ``messages`` or
  ``prompt``; ``n`` honoured; its context refusal worded as OpenAI's.
- ``llama.cpp``: entries owned by ``llamacpp`` with ``meta``; ``/props`` with the slot context;
  ``/apply-template``; ``/tokenize`` with ``content``; one choice per request; its
  ``exceed_context_size_error``.
- ``ollama``: ``/api/version``; no tokenizer endpoint; one choice; ``tool_choice`` not read.

A word-level tokenizer and a ChatML template with a default system prompt stand in for a model's:
what matters is that the gateway's counts agree with the engine's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.threaded_app import ThreadedApp, serve_in_thread

__all__ = ["FakeEngine", "engine_tokens", "render"]

_TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]|\n")
_DEFAULT_SYSTEM = "You are a helpful assistant, made by a team of engineers."


def engine_tokens(text: str) -> list[int]:
    return [sum(map(ord, piece)) % 50_000 for piece in _TOKEN.findall(text)]


def render(messages: list[dict[str, Any]]) -> str:
    if not messages or messages[0].get("role") != "system":
        messages = [{"role": "system", "content": _DEFAULT_SYSTEM}, *messages]
    parts = [f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


@dataclass
class FakeEngine:
    kind: str
    model: str = "open-model"
    window: int = 200
    usage: bool = True
    """Whether answers carry ``usage`` (some engines' OpenAI endpoints leave it out)."""
    port: int = 0
    chats: list[dict[str, Any]] = field(default_factory=list)
    """Every chat request the engine received."""
    _server: ThreadedApp | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.kind == "vllm":
            app.router.add_post("/tokenize", self._vllm_tokenize)
        if self.kind == "llama.cpp":
            app.router.add_get("/props", self._props)
            app.router.add_post("/apply-template", self._apply_template)
            app.router.add_post("/tokenize", self._llamacpp_tokenize)
        if self.kind == "ollama":
            app.router.add_get("/api/version", self._version)
        self._server = serve_in_thread(app)
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def count(self, messages: list[dict[str, Any]]) -> int:
        return len(engine_tokens(render(messages)))

    async def _models(self, request: web.Request) -> web.Response:
        entry: dict[str, Any] = {"id": self.model, "object": "model", "created": 0}
        if self.kind == "vllm":
            entry.update(owned_by="vllm", max_model_len=self.window)
        elif self.kind == "llama.cpp":
            entry.update(owned_by="llamacpp", meta={"n_ctx_train": 8192, "n_vocab": 50_000})
        else:
            entry.update(owned_by="library")
        return web.json_response({"object": "list", "data": [entry]})

    async def _vllm_tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "messages" in body:
            tokens = engine_tokens(render(body["messages"]))
        else:
            tokens = engine_tokens(body["prompt"])
        return web.json_response(
            {"count": len(tokens), "max_model_len": self.window, "tokens": tokens}
        )

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"default_generation_settings": {"n_ctx": self.window}, "total_slots": 1}
        )

    async def _apply_template(self, request: web.Request) -> web.Response:
        return web.json_response({"prompt": render((await request.json())["messages"])})

    async def _llamacpp_tokenize(self, request: web.Request) -> web.Response:
        return web.json_response({"tokens": engine_tokens((await request.json())["content"])})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.0"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chats.append(body)
        prompt = self.count(body["messages"])
        limit = body.get("max_tokens") or 16
        if prompt + limit > self.window:
            if self.kind != "ollama":
                return self._too_long(prompt, limit)
            prompt = self.window - limit  # Ollama keeps the prompt's end, silently
        choices = body.get("n") or 1 if self.kind == "vllm" else 1
        words = ["word"] * min(limit, 3)
        usage = {"prompt_tokens": prompt, "completion_tokens": len(words)}
        usage["total_tokens"] = prompt + len(words)
        usage["completion_tokens"] *= choices
        if not body.get("stream"):
            answer = web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": self.model,
                    "choices": [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": "length" if limit <= 3 else "stop",
                        }
                        for i in range(choices)
                    ],
                    **({"usage": usage} if self.usage else {}),
                }
            )
            return answer
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(choices):
            for word in words:
                await response.write(_sse(self._chunk({"index": i, "delta": {"content": word}})))
            await response.write(
                _sse(self._chunk({"index": i, "delta": {}, "finish_reason": "stop"}))
            )
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_sse({**self._chunk(None), "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    def _chunk(self, choice: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": self.model,
            "choices": [choice] if choice else [],
        }

    def _too_long(self, prompt: int, limit: int) -> web.Response:
        if self.kind == "llama.cpp":
            error = {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": prompt,
                "n_ctx": self.window,
            }
        else:
            error = {
                "message": f"This model's maximum context length is {self.window} tokens. "
                f"However, you requested {prompt + limit} tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        return web.json_response({"error": error}, status=400)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
