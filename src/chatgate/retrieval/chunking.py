"""Token windows over a document's text, cut the way OpenAI's vector stores cut files.

A file is split into windows of at most ``max_chunk_size_tokens`` tokens, each starting
``chunk_overlap_tokens`` before the previous one ended, so a passage cut at a window's edge is
still whole in one of them. Windows are counted in the tokens of the embedding model's encoding
because that is what limits what an embedding (and a model's context) can hold.

Each chunk keeps exact character offsets into the source text (``text[start:end]``), so a search
result can be traced back to its place in the file. Token boundaries are byte positions, and a
token may end inside a multi-byte character (rare CJK, emoji): a window that would end inside
one ends before it instead, and an overlap that would start inside one starts before it, so
every chunk is valid text within its token budget and no character falls between two chunks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol, runtime_checkable

from chatgate.tokenizers import Encoder

__all__ = [
    "AUTO",
    "Chunk",
    "ChunkingStrategy",
    "ChunkingStrategyError",
    "chunk_text",
    "parse_chunking_strategy",
    "strategy_json",
]

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096

# A window may end early at a natural break found in its last 15%; no further, or chunks
# shrink and their count grows for little gain in coherence.
_BREAK_WINDOW = 0.15
# bpe-openai refuses a single input of a million characters or 200,000 tokens; every character
# is at most 4 bytes and every token at least 1, so this many characters always stays under both.
_SEGMENT_CHARS = 48_000
# UTF-8 continuation bytes: a token starting with one begins inside a character.
_CONTINUATION = bytes(range(0x80, 0xC0))
# Where cutting the text does not change its tokens: after a newline that is followed by the
# start of a word, number or punctuation run (OpenAI's pre-tokenizer patterns never join such a
# newline to what follows, except for "/"), else before a space between two non-spaces.
_NEWLINE_CUT = re.compile(r"\n(?=[^\s/])")
_SPACE_CUT = re.compile(r"(?<=\S) (?=\S)")
_SENTENCE_ENDS = frozenset(".!?…")
# Ideographic full stop, full-width ! and ?: no space follows them.
_CJK_SENTENCE_ENDS = frozenset("\u3002\uff01\uff1f")
_CLOSERS = frozenset("\"')]}\u00bb\u201d\u2019")  # quotes and brackets that close a sentence
_LOOKAROUND = 64


@dataclass(frozen=True, slots=True)
class Chunk:
    """A window of the source: ``source[start:end] == text``.

    ``tokens`` counts the window's tokens in the encoding of the whole source; encoding
    ``text`` on its own can differ by a token at either edge, where a word was cut.
    """

    index: int
    text: str
    start: int
    end: int
    tokens: int


class ChunkingStrategyError(ValueError):
    """An invalid ``chunking_strategy``; ``param`` is the offending field's path."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"Invalid '{param}': {message}")
        self.param = param


def _check_sizes(max_tokens: object, overlap: object, max_name: str, overlap_name: str) -> None:
    # bool is an int subclass, but `true` is not a size in any request.
    if type(max_tokens) is not int or not MIN_CHUNK_TOKENS <= max_tokens <= MAX_CHUNK_TOKENS:
        raise ChunkingStrategyError(
            max_name, f"expected an integer from {MIN_CHUNK_TOKENS} to {MAX_CHUNK_TOKENS}."
        )
    if type(overlap) is not int or not 0 <= overlap <= max_tokens // 2:
        raise ChunkingStrategyError(
            overlap_name,
            f"expected an integer from 0 to {max_tokens // 2} (half of {max_name}).",
        )


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """OpenAI's static chunking parameters; "auto" is :data:`AUTO`."""

    max_chunk_size_tokens: int
    chunk_overlap_tokens: int

    def __post_init__(self) -> None:
        _check_sizes(
            self.max_chunk_size_tokens,
            self.chunk_overlap_tokens,
            "max_chunk_size_tokens",
            "chunk_overlap_tokens",
        )


AUTO = ChunkingStrategy(max_chunk_size_tokens=800, chunk_overlap_tokens=400)


def parse_chunking_strategy(value: object) -> ChunkingStrategy:
    """The strategy of a request's ``chunking_strategy`` (absent or ``{"type": "auto"}`` is
    :data:`AUTO`), or :class:`ChunkingStrategyError` naming the field that is wrong."""
    if value is None:
        return AUTO
    if not isinstance(value, Mapping):
        raise ChunkingStrategyError("chunking_strategy", "expected an object.")
    kind = value.get("type")
    if kind == "auto":
        _no_other_keys(value, {"type"}, "chunking_strategy")
        return AUTO
    if kind != "static":
        raise ChunkingStrategyError("chunking_strategy.type", "expected 'auto' or 'static'.")
    _no_other_keys(value, {"type", "static"}, "chunking_strategy")
    static = value.get("static")
    if not isinstance(static, Mapping):
        raise ChunkingStrategyError(
            "chunking_strategy.static",
            "expected an object with max_chunk_size_tokens and chunk_overlap_tokens.",
        )
    fields = {"max_chunk_size_tokens", "chunk_overlap_tokens"}
    _no_other_keys(static, fields, "chunking_strategy.static")
    for name in sorted(fields - static.keys()):
        raise ChunkingStrategyError(f"chunking_strategy.static.{name}", "missing required field.")
    max_tokens = static["max_chunk_size_tokens"]
    overlap = static["chunk_overlap_tokens"]
    _check_sizes(
        max_tokens,
        overlap,
        "chunking_strategy.static.max_chunk_size_tokens",
        "chunking_strategy.static.chunk_overlap_tokens",
    )
    return ChunkingStrategy(max_chunk_size_tokens=max_tokens, chunk_overlap_tokens=overlap)


def strategy_json(strategy: ChunkingStrategy) -> dict[str, object]:
    """The strategy as OpenAI reports it on a vector-store file (auto shows as its static
    equivalent)."""
    return {
        "type": "static",
        "static": {
            "max_chunk_size_tokens": strategy.max_chunk_size_tokens,
            "chunk_overlap_tokens": strategy.chunk_overlap_tokens,
        },
    }


def _no_other_keys(value: Mapping[object, object], allowed: set[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            raise ChunkingStrategyError(f"{path}.{key}", "unknown parameter.")


# --- chunking ------------------------------------------------------------------------------


@runtime_checkable
class _ByteEncoder(Encoder, Protocol):
    """An :class:`~chatgate.tokenizers.Encoder` that also gives each token's bytes, which
    offsets need (tiktoken's and bpe-openai's encodings both do)."""

    def decode_tokens_bytes(self, tokens: Sequence[int], /) -> list[bytes]: ...


def chunk_text(
    text: str, encoder: Encoder, max_tokens: int = 800, overlap_tokens: int = 400
) -> list[Chunk]:
    """``text`` cut into windows of at most ``max_tokens`` tokens overlapping by
    ``overlap_tokens`` (a little more where a character spans the cut).

    A window that is not the last ends at the latest paragraph break in its last 15%, else the
    latest sentence end there, else the latest whitespace there, else at ``max_tokens``: a
    chunk that stops mid-sentence embeds worse. Sizes are checked as OpenAI checks them
    (100 to 4096 tokens, overlap at most half), raising :class:`ValueError`.
    """
    _check_sizes(max_tokens, overlap_tokens, "max_tokens", "overlap_tokens")
    if not isinstance(encoder, _ByteEncoder):
        raise TypeError(f"{type(encoder).__name__} cannot give the bytes of its tokens")
    if not text.strip():
        return []
    offsets, aligned = _token_offsets(text, encoder)
    count = len(offsets) - 1
    chunks: list[Chunk] = []
    first = 0
    while True:
        if first + max_tokens >= count:
            last = count
        else:
            last = _window_end(text, offsets, aligned, first, max_tokens)
        start, end = offsets[first], offsets[last]
        piece = text[start:end]
        if piece.strip():
            chunks.append(Chunk(len(chunks), piece, start, end, last - first))
        if last == count:
            return chunks
        first = _next_start(aligned, last - overlap_tokens)


def _token_offsets(text: str, encoder: _ByteEncoder) -> tuple[list[int], list[bool]]:
    """For every token boundary (``len(tokens) + 1`` of them): its character offset, and
    whether it falls between characters rather than inside one.

    Inside a character, the offset given is that of the character's end.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains unpaired surrogates, which are not text") from None
    pieces = encoder.decode_tokens_bytes(_encode(text, encoder))
    if text.isascii():
        offsets = list(accumulate(map(len, pieces), initial=0))
        aligned = [True] * len(offsets)
    else:
        # A character is counted in the token holding its first byte.
        starts = (len(piece.translate(None, _CONTINUATION)) for piece in pieces)
        offsets = list(accumulate(starts, initial=0))
        aligned = [not 0x80 <= piece[0] < 0xC0 for piece in pieces]
        aligned.append(True)
    if offsets[-1] != len(text):
        raise ValueError("the encoder's tokens do not spell the text")
    return offsets, aligned


def _encode(text: str, encoder: Encoder) -> list[int]:
    """All of ``text``'s tokens: once over the text, in segments cut where the pre-tokenizer
    would split anyway, so the tokens are those of a single call."""
    tokens: list[int] = []
    for start, end in _segments(text, _SEGMENT_CHARS):
        tokens += encoder.encode_ordinary(text[start:end])
    return tokens


def _segments(text: str, size: int) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > size:
        end = _cut(text, start + size // 2, start + size)
        bounds.append((start, end))
        start = end
    bounds.append((start, len(text)))
    return bounds


def _cut(text: str, low: int, high: int) -> int:
    """The latest tokenization-neutral cut in ``(low, high]``, else ``high``."""
    for pattern in (_NEWLINE_CUT, _SPACE_CUT):
        cut = -1
        for match in pattern.finditer(text, low, high):
            cut = match.start() + (pattern is _NEWLINE_CUT)
        if cut > low:
            return cut
    return high


def _window_end(
    text: str, offsets: Sequence[int], aligned: Sequence[bool], first: int, max_tokens: int
) -> int:
    """The token boundary ending the window that starts at ``first`` (not the last window)."""
    limit = first + max_tokens
    earliest = limit - int(max_tokens * _BREAK_WINDOW)
    best, best_score = -1, 0
    for boundary in range(limit, earliest - 1, -1):
        if not aligned[boundary]:
            continue
        score = _break_score(text, offsets[boundary])
        if score > best_score:
            best, best_score = boundary, score
            if score == 3:
                break
    if best >= 0:
        return best
    while not aligned[limit]:
        limit -= 1
    return limit


def _break_score(text: str, at: int) -> int:
    """How natural a cut at character ``at`` is: 3 in a blank line, 2 after a sentence, 1 at
    whitespace, 0 inside a word."""
    low = at
    while low > 0 and at - low < _LOOKAROUND and text[low - 1].isspace():
        low -= 1
    high = at
    while high < len(text) and high - at < _LOOKAROUND and text[high].isspace():
        high += 1
    if low == high:
        return 2 if at and text[at - 1] in _CJK_SENTENCE_ENDS else 0
    if text.count("\n", low, high) >= 2:
        return 3
    before = low
    while before > 0 and low - before < 3 and text[before - 1] in _CLOSERS:
        before -= 1
    return 2 if before and text[before - 1] in _SENTENCE_ENDS else 1


def _next_start(aligned: Sequence[bool], start: int) -> int:
    """``start``, or the boundary before it where it would split a character (the overlap
    grows by the rest of that character rather than dropping it).

    Always past the previous window's start: that window is at least 85% of ``max_tokens``
    minus a character's tokens, and the overlap at most 50%.
    """
    while not aligned[start]:
        start -= 1
    return start
