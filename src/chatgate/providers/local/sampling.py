"""Sampler chains for llama.cpp built from OpenAI sampling parameters, and token logprobs."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel, LlamaSampler
from llama_cpp.llama_grammar import LlamaGrammar

from chatgate.protocol import TokenLogprob, TopLogprob

__all__ = ["SamplingParams", "build_sampler", "token_logprob"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] | None = None
    seed: int = 0
    grammar: str | None = None
    penalty_window: int = 4096


def build_sampler(model: LlamaModel, n_vocab: int, params: SamplingParams) -> LlamaSampler:
    """A fresh chain: logit bias, penalties, grammar, then greedy or top-p/temperature sampling."""
    sampler = LlamaSampler()
    if params.logit_bias:
        sampler.add_logit_bias(n_vocab, params.logit_bias)
    if params.presence_penalty or params.frequency_penalty:
        sampler.add_penalties(
            n_vocab=n_vocab,
            penalty_last_n=params.penalty_window,
            penalty_repeat=1.0,
            penalty_freq=params.frequency_penalty,
            penalty_present=params.presence_penalty,
        )
    if params.grammar is not None:
        sampler.add_grammar(model, LlamaGrammar.from_string(params.grammar, verbose=False))
    if params.temperature == 0.0:
        sampler.add_greedy()
    else:
        if params.top_p < 1.0:
            sampler.add_top_p(params.top_p, 1)
        sampler.add_temp(params.temperature)
        sampler.add_dist(params.seed & 0xFFFFFFFF)
    return sampler


def _top(token_text: bytes, logprob: float) -> TopLogprob:
    return {
        "token": token_text.decode("utf-8", errors="replace"),
        "logprob": logprob,
        "bytes": list(token_text),
    }


def token_logprob(
    *,
    logits: np.typing.NDArray[np.float32],
    token: int,
    text: str,
    token_bytes: bytes,
    top_n: int,
    piece: PieceFn,
) -> TokenLogprob:
    """Logprob of ``token`` (and the ``top_n`` likeliest) under the model's raw distribution."""
    shifted = logits - logits.max()
    logsumexp = float(np.log(np.exp(shifted).sum()))
    logprobs = shifted - logsumexp
    top: list[TopLogprob] = []
    if top_n:
        best = np.argpartition(-logprobs, top_n)[:top_n]
        best = best[np.argsort(-logprobs[best])]
        top = [_top(piece(int(t)), min(0.0, float(logprobs[t]))) for t in best]
    return {
        "token": text,
        "logprob": min(0.0, float(logprobs[token])),
        "bytes": list(token_bytes),
        "top_logprobs": top,
    }


class PieceFn:
    """A token's exact bytes (no special tokens), cached per token id."""

    def __init__(self, model: LlamaModel):
        self._vocab = model.vocab
        self._cache: dict[int, bytes] = {}
        self._buffer = ctypes.create_string_buffer(256)

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, 256, 0, False)
            piece = self._buffer.raw[: max(n, 0)]
            self._cache[token] = piece
        return piece
