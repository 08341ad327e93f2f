"""The llama.cpp generation loop, run on one worker thread per model instance.

The thread owns the ``Llama`` object; the event loop never touches it. A job streams events back
through ``emit`` (thread-safe) and stops within one token when its ``cancel`` flag is set.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np

from chatgate.protocol import TokenLogprob
from chatgate.providers.local.cpu import load_llama
from chatgate.providers.local.sampling import PieceFn, SamplingParams, build_sampler, token_logprob
from chatgate.providers.local.stops import Piece, StopMatcher

__all__ = [
    "Engine",
    "Finished",
    "GenerationJob",
    "Text",
]


@dataclass(frozen=True, slots=True)
class Text:
    choice: int
    text: str
    logprobs: list[TokenLogprob] | None


@dataclass(frozen=True, slots=True)
class Finished:
    choice: int
    finish_reason: str
    completion_tokens: int


Event = Text | Finished


@dataclass(slots=True)
class GenerationJob:
    prompt_tokens: list[int]
    params: list[SamplingParams]
    """One entry per choice (``n``)."""
    max_tokens: int
    stops: list[str]
    logprobs: bool
    top_logprobs: int
    emit: Callable[[Event | None], None]
    """Thread-safe; ``None`` marks the end of the job."""
    cancel: threading.Event = field(default_factory=threading.Event)


class Engine:
    """One loaded GGUF model and its generation loop. Not thread-safe: one job at a time."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        n_batch: int,
        extra_buffer_types: bool | None = None,
    ):
        self.llama = load_llama(
            path,
            extra_buffer_types=extra_buffer_types,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=n_batch,
            logits_all=False,
            verbose=False,
        )
        self._model = self.llama._model
        self.n_vocab = int(self.llama.n_vocab())
        self.n_ctx = int(self.llama.n_ctx())
        self.n_ctx_train = int(self._model.n_ctx_train())
        self._piece = PieceFn(self._model)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llama.metadata)

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token)

    def tokenize(self, text: str) -> list[int]:
        add_bos = bool(self._model.add_bos_token())
        bos = self._model.token_get_text(self._model.token_bos()) if add_bos else ""
        if bos and text.startswith(bos):
            add_bos = False
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def tokenize_text(self, text: str, *, add_bos: bool) -> list[int]:
        """A plain text's tokens, with the model's BOS first if asked and the model uses one."""
        add_bos = add_bos and bool(self._model.add_bos_token())
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def run(self, job: GenerationJob) -> None:
        for choice, params in enumerate(job.params):
            if job.cancel.is_set():
                return
            self._eval_prompt(job.prompt_tokens)
            self._generate(job, choice, params)

    def _eval_prompt(self, tokens: list[int]) -> None:
        llama = self.llama
        cached = llama.input_ids[: llama.n_tokens]
        prefix = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            prefix += 1
        prefix = min(prefix, len(tokens) - 1)  # the last prompt token is evaluated for logits
        if prefix > 0 and llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
            llama.n_tokens = prefix
        else:
            llama.reset()
        llama.eval(tokens[llama.n_tokens :])

    def _generate(self, job: GenerationJob, choice: int, params: SamplingParams) -> None:
        llama = self.llama
        sampler = build_sampler(self._model, self.n_vocab, params)
        matcher: StopMatcher[TokenLogprob | None] = StopMatcher(job.stops)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        reason = "length"
        try:
            while produced < job.max_tokens and llama.n_tokens < self.n_ctx:
                if job.cancel.is_set():
                    return
                logits = self._logits() if job.logprobs else None
                token = int(sampler.sample(llama._ctx, -1))
                if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                    reason = "stop"
                    break
                produced += 1
                raw = self._piece(token)
                text = decoder.decode(raw)
                entry = None
                if logits is not None:
                    entry = token_logprob(
                        logits=logits,
                        token=token,
                        text=text,
                        token_bytes=raw,
                        top_n=job.top_logprobs,
                        piece=self._piece,
                    )
                self._emit(job, choice, matcher.feed(Piece(text, entry)))
                if matcher.stopped:
                    reason = "stop"
                    break
                llama.eval([token])
            if not matcher.stopped:
                tail = decoder.decode(b"", final=True)
                pieces = matcher.feed(Piece(tail, None)) if tail else []
                if matcher.stopped:
                    reason = "stop"
                else:
                    pieces += matcher.flush()
                self._emit(job, choice, pieces)
        finally:
            sampler.close()
        job.emit(Finished(choice, reason, produced))

    def _logits(self) -> np.typing.NDArray[np.float32]:
        pointer = self.llama._ctx.get_logits()
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    @staticmethod
    def _emit(job: GenerationJob, choice: int, pieces: list[Piece[TokenLogprob | None]]) -> None:
        if not pieces:
            return
        text = "".join(p.text for p in pieces)
        logprobs = None
        if job.logprobs:
            logprobs = [p.meta for p in pieces if p.meta is not None]
            # a stop string may cut a token: its entry keeps only the emitted text
            if logprobs and pieces[-1].meta is not None:
                logprobs[-1] = {**logprobs[-1], "token": pieces[-1].text}
        job.emit(Text(choice, text, logprobs))
