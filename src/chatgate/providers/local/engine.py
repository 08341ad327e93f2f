"""The llama.cpp generation loop: continuous batching on one worker thread per model instance.

Every admitted request's choices are *sequences*, each in its own KV-cache stream (llama.cpp's
``n_seq_max`` streams, ``n_ctx`` cells each). One loop step builds one batch: the next token of
every sequence that is generating, then prompt tokens of sequences still being prefilled — a
bounded chunk while others generate, so a long prompt never stalls running streams — decodes it
once and samples every sequence whose logits came out. New sequences join between steps; a
cancelled one leaves within one step. Each stream keeps its tokens after its sequence ends, and
a new prompt goes to the free stream sharing its longest prefix (prompt caching per stream).

The thread owns the model and context; the event loop only submits jobs (``submit``) and reads
events, which the thread sends through each job's thread-safe ``emit``.
"""

from __future__ import annotations

import codecs
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel, LlamaSampler

from chatgate.protocol import TokenLogprob
from chatgate.providers.local.cpu import model_params, quiet_llama_log
from chatgate.providers.local.sampling import PieceFn, SamplingParams, build_sampler, token_logprob
from chatgate.providers.local.stops import Piece, StopMatcher
from chatgate.providers.local.vocab import prompt_ids

__all__ = [
    "Engine",
    "Failed",
    "Finished",
    "GenerationJob",
    "Text",
]

log = logging.getLogger("chatgate.providers.local")


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


@dataclass(frozen=True, slots=True)
class Failed:
    """The engine failed while this job ran (the job ends after it)."""

    error: str


Event = Text | Finished | Failed


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
    """Thread-safe; ``None`` marks the end of the job (the engine no longer uses anything of it)."""
    cancel: threading.Event = field(default_factory=threading.Event)
    open_choices: int = 0


@dataclass(slots=True)
class _Sequence:
    """One choice of a job, generating in KV stream ``stream``."""

    job: GenerationJob
    choice: int
    stream: int
    sampler: LlamaSampler
    pending: list[int]
    """Prompt tokens not yet evaluated."""
    n_past: int
    matcher: StopMatcher[TokenLogprob | None]
    decoder: codecs.IncrementalDecoder
    produced: int = 0
    next_token: int | None = None
    """Sampled, not yet decoded: it goes into the next batch."""
    logits_at: int = -1
    """Row of this sequence's logits in the batch just decoded (-1: none)."""


class Engine:
    """One loaded GGUF model serving up to ``max_batch`` sequences at once."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        n_batch: int,
        max_batch: int = 8,
        prefill_chunk: int = 64,
        extra_buffer_types: bool | None = None,
        flash_attn: bool = True,
    ):
        quiet_llama_log()
        self._model = LlamaModel(
            path_model=str(path), params=model_params(extra_buffer_types), verbose=True
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * max_batch
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = max_batch
        params.kv_unified = False  # a stream per sequence: n_ctx cells each, no sharing
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self._ctx = LlamaContext(model=self._model, params=params, verbose=True)
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=True)
        self.n_vocab = int(self._model.n_vocab())
        self.n_ctx = int(llama_cpp.llama_n_ctx_seq(self._ctx.ctx))
        self.n_ctx_train = int(self._model.n_ctx_train())
        self._n_batch = n_batch
        self._prefill_chunk = max(1, min(prefill_chunk, n_batch))
        self._piece = PieceFn(self._model)
        self._cached: list[list[int]] = [[] for _ in range(max_batch)]
        """Tokens in each stream's KV cache, in order."""
        self._free = set(range(max_batch))
        self._active: list[_Sequence] = []
        self._waiting: deque[tuple[GenerationJob, int]] = deque()
        self._incoming: list[GenerationJob] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ model facts

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._model.metadata())

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token)

    def token_bos(self) -> int:
        return int(self._model.token_bos())

    def token_eos(self) -> int:
        return int(self._model.token_eos())

    def tokenize(self, text: str) -> list[int]:
        return prompt_ids(self._model, text)

    def tokenize_text(self, text: str, *, add_bos: bool) -> list[int]:
        """A plain text's tokens, with the model's BOS first if asked and the model uses one."""
        add_bos = add_bos and bool(self._model.add_bos_token())
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def submit(self, job: GenerationJob) -> None:
        """Queue a job; its events arrive through ``job.emit``, then ``None``."""
        job.open_choices = len(job.params)
        with self._wake:
            self._incoming.append(job)
            self._wake.notify()

    def _loop(self) -> None:
        while self._take_incoming():
            try:
                self._admit()
                self._step()
            except Exception as exc:
                log.exception("generation step failed; ending the requests in the batch")
                self._fail_active(f"{type(exc).__name__}: {exc}")

    def _fail_active(self, error: str) -> None:
        """End every running sequence's job with ``Failed``; their streams start afresh."""
        for seq in list(self._active):
            if not seq.job.cancel.is_set():
                seq.job.cancel.set()
                seq.job.emit(Failed(error))
            llama_cpp.llama_memory_seq_rm(self._memory, seq.stream, -1, -1)
            self._cached[seq.stream].clear()
            self._release(seq)

    def _take_incoming(self) -> bool:
        """Wait for work and move submitted jobs in; False once closed."""
        with self._wake:
            while not (self._closed or self._incoming or self._active or self._waiting):
                self._wake.wait()
            if self._closed:
                return False
            incoming, self._incoming = self._incoming, []
        for job in incoming:
            self._waiting.extend((job, choice) for choice in range(len(job.params)))
        return True

    def _admit(self) -> None:
        while self._waiting and self._free:
            job, choice = self._waiting.popleft()
            if job.cancel.is_set():
                self._choice_done(job)
                continue
            try:
                sampler = build_sampler(self._model, self.n_vocab, job.params[choice])
            except Exception as exc:  # e.g. a grammar llama.cpp refuses: this job alone fails
                log.exception("cannot start a sequence")
                job.cancel.set()
                job.emit(Failed(f"{type(exc).__name__}: {exc}"))
                self._choice_done(job)
                continue
            self._active.append(self._start(job, choice, sampler))

    def _start(self, job: GenerationJob, choice: int, sampler: LlamaSampler) -> _Sequence:
        prompt = job.prompt_tokens
        # The free stream sharing the longest prefix; among equals the lowest, so running
        # streams stay contiguous (see ``_step``).
        stream, prefix = max(
            ((s, _common_prefix(self._cached[s], prompt)) for s in self._free),
            key=lambda pair: (pair[1], -pair[0]),
        )
        self._free.discard(stream)
        prefix = min(prefix, len(prompt) - 1)  # the last prompt token is evaluated for logits
        if not llama_cpp.llama_memory_seq_rm(self._memory, stream, prefix, -1):
            llama_cpp.llama_memory_seq_rm(self._memory, stream, -1, -1)
            prefix = 0
        del self._cached[stream][prefix:]
        return _Sequence(
            job=job,
            choice=choice,
            stream=stream,
            sampler=sampler,
            pending=prompt[prefix:],
            n_past=prefix,
            matcher=StopMatcher(job.stops),
            decoder=codecs.getincrementaldecoder("utf-8")(errors="replace"),
        )

    def _step(self) -> None:
        for seq in [s for s in self._active if s.job.cancel.is_set()]:
            self._release(seq)
        if not self._active:
            return
        # Prompts share a step's budget: a chunk while others generate (their pace holds); when
        # none does, the first prompt may take a whole batch (a long prompt alone goes fast)
        # and the others what is left of a chunk (first tokens come in turn, not all at once).
        plan: list[tuple[_Sequence, list[int]]] = [
            (seq, [seq.next_token]) for seq in self._active if seq.next_token is not None
        ]
        budget = self._prefill_chunk
        if not plan:
            first = next((len(s.pending) for s in self._active if s.pending), 0)
            budget = max(budget, first)
        budget = min(budget, self._n_batch - len(plan))
        prefilling = False
        for seq in self._active:  # in order of admission
            if budget <= 0:
                break
            if seq.next_token is not None or not seq.pending:
                continue
            if prefilling and len(seq.pending) > budget:
                # Not split to fill a step: llama.cpp's kernels round differently for different
                # numbers of rows, and a prompt evaluated in other pieces than it would be
                # alone could change the answer in its last bits. It waits for the next step.
                continue
            plan.append((seq, seq.pending[:budget]))
            budget -= len(plan[-1][1])
            prefilling = True
        if not plan:
            return
        # llama.cpp evaluates a batch over per-sequence KV streams in one graph per run of
        # consecutive stream ids, taken in batch order: so the batch goes in stream order.
        plan.sort(key=lambda entry: entry[0].stream)
        batch = self._batch.batch
        n = 0
        for seq, tokens in plan:
            wants_logits = len(tokens) == len(seq.pending) or seq.next_token is not None
            for i, token in enumerate(tokens):
                batch.token[n], batch.pos[n] = token, seq.n_past + i
                batch.seq_id[n][0], batch.n_seq_id[n] = seq.stream, 1
                batch.logits[n] = wants_logits and i == len(tokens) - 1
                n += 1
            if wants_logits:
                seq.logits_at = n - 1
        batch.n_tokens = n
        self._ctx.decode(self._batch)
        for seq, tokens in plan:
            self._cached[seq.stream].extend(tokens)
            seq.n_past += len(tokens)
            if seq.next_token is not None:
                seq.next_token = None
            else:
                del seq.pending[: len(tokens)]
        for seq in [s for s in self._active if s.logits_at >= 0]:
            row, seq.logits_at = seq.logits_at, -1
            self._sample(seq, row)

    def _sample(self, seq: _Sequence, row: int) -> None:
        job = seq.job
        if job.cancel.is_set():
            self._release(seq)
            return
        if seq.produced >= job.max_tokens or seq.n_past >= self.n_ctx:
            self._finish(seq, "length")
            return
        logits = self._logits(row) if job.logprobs else None
        token = int(seq.sampler.sample(self._ctx, row))
        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            self._finish(seq, "stop")
            return
        seq.produced += 1
        raw = self._piece(token)
        text = seq.decoder.decode(raw)
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
        self._emit(job, seq.choice, seq.matcher.feed(Piece(text, entry)))
        if seq.matcher.stopped:
            self._finish(seq, "stop", flush=False)
        elif seq.produced >= job.max_tokens or seq.n_past >= self.n_ctx:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _finish(self, seq: _Sequence, reason: str, *, flush: bool = True) -> None:
        if flush:
            tail = seq.decoder.decode(b"", final=True)
            pieces = seq.matcher.feed(Piece(tail, None)) if tail else []
            if seq.matcher.stopped:
                reason = "stop"
            else:
                pieces += seq.matcher.flush()
            self._emit(seq.job, seq.choice, pieces)
        seq.job.emit(Finished(seq.choice, reason, seq.produced))
        self._release(seq)

    def _release(self, seq: _Sequence) -> None:
        """The sequence leaves the batch; its stream keeps its tokens for prefix reuse."""
        self._active.remove(seq)
        seq.sampler.close()
        self._free.add(seq.stream)
        self._choice_done(seq.job)

    @staticmethod
    def _choice_done(job: GenerationJob) -> None:
        job.open_choices -= 1
        if job.open_choices == 0:
            job.emit(None)

    def _logits(self, row: int) -> np.typing.NDArray[np.float32]:
        pointer = self._ctx.get_logits_ith(row)
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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
