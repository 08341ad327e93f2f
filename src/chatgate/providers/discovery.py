"""What chatgate knows of the engine serving one upstream model: which engine it is, how its
prompts are counted, its context window (published, configured, or named by its first refusal),
and what it honours of OpenAI's request. Found out when the provider starts; an engine that
cannot be reached then is asked again in the background until it answers, counted meanwhile
with the fallback encoding."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson

from chatgate.config import OpenAICompatModelConfig
from chatgate.protocol import UpstreamError
from chatgate.providers.counting import BpeCounter, Counter, GgufCounter, counter_for
from chatgate.providers.engine_counting import (
    FramedCounter,
    LlamaCppCounter,
    TextCount,
    VllmCounter,
    counted_by,
    engine_text_tokens,
    learn_framing,
)
from chatgate.providers.engines import HONOURS, EngineInfo, identify
from chatgate.providers.upstream import window_in
from chatgate.tasks import stop_task
from chatgate.tokenizers import encoding_name_for, is_openai_model

__all__ = ["Capability", "UpstreamEngine"]

log = logging.getLogger("chatgate.providers.engines")

Capability = Literal["n", "tool_choice_required", "tool_choice_named"]

_ASK_TIMEOUT = 30.0


class _NoUsage(ValueError):
    """The engine answered without ``usage``: asking again will not change that."""


_RETRY_MAX = 60.0


class UpstreamEngine:
    def __init__(self, config: OpenAICompatModelConfig, headers: dict[str, str], model: str):
        self._config = config
        self._headers = headers
        self._model = model
        self._fallback = BpeCounter(
            config.tokenizer
            if config.tokenizer in ("o200k_base", "cl100k_base")
            else encoding_name_for(model)
        )
        self.counter: Counter = counter_for(config.tokenizer, model)
        self.info: EngineInfo | None = None
        self._learned_window: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        return self.info.kind if self.info is not None else "unknown"

    def _wanted(self) -> bool:
        """Is there anything to find out? (An OpenAI model id is counted and served as OpenAI
        does, unless ``tokenizer: engine`` says otherwise.)"""
        return self._config.tokenizer == "engine" or not is_openai_model(self._model)

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        if not self._wanted():
            return
        self._task = asyncio.create_task(self._until_known())
        wait = self._config.connect_timeout + 5.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), wait)

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    def honours(self, capability: Capability) -> bool:
        configured: bool | None = getattr(self._config.capabilities, capability)
        if configured is not None:
            return configured
        return HONOURS[self.info.kind if self.info else "unknown"][capability]

    def context_window(self) -> int | None:
        if self._config.context_window is not None:
            return self._config.context_window
        if self._learned_window is not None:
            return self._learned_window
        return self.info.context_window if self.info is not None else None

    def learn(self, error: UpstreamError) -> None:
        """An engine's refusal that names its context window: from now on, prompts that cannot
        fit are refused up front (streamed ones included, which some engines accept with a 200
        and then drop)."""
        if error.code != "context_length_exceeded" or self._config.context_window is not None:
            return
        window = window_in(error.message)
        if window is not None and window != self._learned_window:
            log.info("%s: the engine serves a context of %d tokens", self._config.name, window)
            self._learned_window = window

    async def _until_known(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._identify()
                return
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                log.info(
                    "%s: cannot ask the engine yet (%s: %s); asking again in %.0f s",
                    self._config.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)  # back-off between attempts, not synchronisation
            delay = min(delay * 2, _RETRY_MAX)

    async def _identify(self) -> None:
        assert self._session is not None
        info = await identify(
            self._session, self._config.base_url, self._model, self._headers, _ASK_TIMEOUT
        )
        if self._config.tokenizer in (None, "engine"):
            self.counter = await self._engine_counter(info)
            how = counted_by(info, self._config.tokenizer)
        else:
            how = f"`{self._config.tokenizer}`"
        self.info = info
        log.info(
            "%s: served by %s (context %s), prompts counted with %s",
            self._config.name,
            info.kind,
            self.context_window() or "not published",
            how,
        )

    async def _engine_counter(self, info: EngineInfo) -> Counter:
        if info.kind == "vllm":
            return VllmCounter(self._post_engine(info), self._model, self._fallback)
        if info.kind == "llama.cpp":
            return LlamaCppCounter(self._post_engine(info), self._model, self._fallback)
        if info.kind == "llama-cpp-python" and self._model.endswith(".gguf"):
            # Served without an alias, its model id is the GGUF's path: on the same host, that
            # file counts exactly.
            path = Path(self._model)
            if await asyncio.to_thread(path.is_file):
                return await asyncio.to_thread(GgufCounter, path)
        if info.kind not in ("llama-cpp-python", "ollama"):
            return self._fallback
        # Their texts are counted locally unless `tokenizer: engine` says otherwise:
        # llama-cpp-python's tokenizer endpoint waits behind the running generation and, by
        # default, makes its server cut a running stream short.
        tokens: TextCount = self._fallback.text
        if info.kind == "llama-cpp-python" and self._config.tokenizer == "engine":
            post = self._post_engine(info)
            tokens = engine_text_tokens(post, self._model, await self._bos(post), self._fallback)
        try:
            framing = await learn_framing(self._prompt_tokens, tokens)
        except _NoUsage:
            log.warning(
                "%s: the engine reports no usage, so its chat framing is unknown: counting "
                "with %s (set `tokenizer` for exact counts)",
                self._config.name,
                self._fallback.name,
            )
            return self._fallback
        log.info("%s: the engine's chat framing is %s", self._config.name, framing)
        return FramedCounter(tokens, framing)

    async def _bos(self, post: Any) -> int:
        """How many tokens llama-cpp-python's ``/extras/tokenize`` puts before a text (the
        model's BOS, where it adds one): the first token two different words share. (An empty
        text is never sent: that server crashes on it.)"""
        one = (await post("/extras/tokenize", {"model": self._model, "input": "Hello"}))["tokens"]
        two = (await post("/extras/tokenize", {"model": self._model, "input": "World"}))["tokens"]
        return 1 if len(one) > 1 and len(two) > 1 and one[0] == two[0] else 0

    def _post_engine(self, info: EngineInfo) -> Any:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return await self._post(info.root + path, body)

        return post

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            raise ValueError("the upstream client is closed")
        async with self._session.post(
            url,
            data=orjson.dumps(body),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=_ASK_TIMEOUT),
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise ValueError(f"{url} answered {response.status}")
        answer = orjson.loads(raw)
        if not isinstance(answer, dict):
            raise ValueError(f"{url} answered no JSON object")
        return answer

    async def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """The engine's own count of a prompt, from a one-token answer's usage."""
        url = self._config.base_url.rstrip("/") + "/chat/completions"
        body = {"model": self._model, "messages": messages, "max_tokens": 1, "temperature": 0}
        usage = (await self._post(url, body)).get("usage") or {}
        count = usage.get("prompt_tokens")
        if not isinstance(count, int) or count <= 0:
            raise _NoUsage("the engine reported no prompt tokens")
        return count
