"""Token-window chunking: exact character offsets (also where a token splits a character),
overlap counted in tokens, natural break points, inputs beyond the tokenizer's single-call
limit, and OpenAI's ``chunking_strategy`` request and response shapes."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Protocol, cast

import pytest

from chatgate.retrieval import chunking
from chatgate.retrieval.chunking import (
    AUTO,
    Chunk,
    ChunkingStrategy,
    ChunkingStrategyError,
    chunk_text,
    parse_chunking_strategy,
    strategy_json,
)
from chatgate.tokenizers import encoding_for


class ByteEncoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_tokens_bytes(self, tokens: Sequence[int], /) -> list[bytes]: ...


O200K = cast(ByteEncoder, encoding_for("o200k_base"))


class CharTokens:
    """One token per character: windows and breaks land on predictable characters."""

    def encode_ordinary(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    def decode_tokens_bytes(self, tokens: Sequence[int], /) -> list[bytes]:
        return [chr(token).encode() for token in tokens]


class ByteTokens:
    """One token per UTF-8 byte: a token boundary inside every multi-byte character."""

    def encode_ordinary(self, text: str) -> list[int]:
        return list(text.encode())

    def decode_tokens_bytes(self, tokens: Sequence[int], /) -> list[bytes]:
        return [bytes([token]) for token in tokens]


class EncodeOnly:
    def encode_ordinary(self, text: str) -> list[int]:
        return [ord(char) for char in text]


MULTILINGUAL = (
    "Grüße aus Köln. Ünïcödé text wraps around. 東京タワーは高さ333メートルです。"
    "Emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇯🇵🇩🇪 split into several tokens! "
    "Rare ideographs 𠀋𠀌𠀍𡈽 and combining marks e\u0301a\u0300o\u0302 too.\n\n"
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी — all in one paragraph.\n"
)


def words(count: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    vocabulary = ["gateway", "token", "window", "chunk", "vector", "store", "file", "search"]
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def token_byte_offsets(text: str) -> list[int]:
    """Byte offsets of the token boundaries of the whole text, straight from the encoder."""
    pieces = O200K.decode_tokens_bytes(O200K.encode_ordinary(text))
    return list(accumulate(map(len, pieces), initial=0))


def assert_exact_cover(source: str, chunks: list[Chunk], max_tokens: int) -> None:
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert source[chunk.start : chunk.end] == chunk.text
        assert 0 < chunk.tokens <= max_tokens
    assert chunks[0].start == 0
    assert chunks[-1].end == len(source)
    for previous, following in pairwise(chunks):
        assert previous.start < following.start <= previous.end < following.end


def assert_token_counts(source: str, chunks: list[Chunk]) -> None:
    """Every chunk starts and ends on a token boundary of the whole text and counts the tokens
    between them; computed in bytes here, independently of the chunker's character offsets."""
    boundaries = {offset: index for index, offset in enumerate(token_byte_offsets(source))}
    for chunk in chunks:
        first = boundaries[len(source[: chunk.start].encode())]
        last = boundaries[len(source[: chunk.end].encode())]
        assert chunk.tokens == last - first


# --- basics --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n\t \r\n"])
def test_empty_or_blank_text_has_no_chunks(text: str) -> None:
    assert chunk_text(text, O200K) == []


def test_short_text_is_one_chunk() -> None:
    text = "A short note about the gateway."
    tokens = len(O200K.encode_ordinary(text))
    assert chunk_text(text, O200K) == [Chunk(0, text, 0, len(text), tokens)]


def test_windows_advance_by_max_minus_overlap() -> None:
    text = "x" * 1000  # no break anywhere: every window is cut at max_tokens
    chunks = chunk_text(text, CharTokens(), max_tokens=100, overlap_tokens=30)
    starts = list(range(0, 911, 70))
    assert [(chunk.start, chunk.end) for chunk in chunks] == [
        (start, min(start + 100, 1000)) for start in starts
    ]
    assert [chunk.tokens for chunk in chunks] == [min(100, 1000 - start) for start in starts]


def test_zero_overlap_tiles_the_text() -> None:
    text = words(3000)
    chunks = chunk_text(text, O200K, max_tokens=150, overlap_tokens=0)
    assert "".join(chunk.text for chunk in chunks) == text
    assert all(a.end == b.start for a, b in pairwise(chunks))
    assert_token_counts(text, chunks)


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(800, 400), (100, 50), (333, 17)])
def test_consecutive_chunks_share_exactly_the_overlap_tokens(
    max_tokens: int, overlap_tokens: int
) -> None:
    text = words(6000)
    chunks = chunk_text(text, O200K, max_tokens, overlap_tokens)
    assert len(chunks) > 3
    assert_exact_cover(text, chunks, max_tokens)
    assert_token_counts(text, chunks)
    boundaries = {offset: index for index, offset in enumerate(token_byte_offsets(text))}
    for previous, following in pairwise(chunks):
        shared = boundaries[previous.end] - boundaries[following.start]  # ASCII: bytes == chars
        assert shared == overlap_tokens


def test_defaults_are_openai_auto() -> None:
    text = words(10_000)
    assert chunk_text(text, O200K) == chunk_text(text, O200K, 800, 400)
    assert all(chunk.tokens <= 800 for chunk in chunk_text(text, O200K))


# --- character boundaries ------------------------------------------------------------------


def test_multibyte_text_and_emoji_keep_exact_offsets() -> None:
    text = MULTILINGUAL * 40
    pieces = O200K.decode_tokens_bytes(O200K.encode_ordinary(text))
    splits_characters = any(not 0x80 <= piece[0] < 0xC0 and _invalid(piece) for piece in pieces)
    assert splits_characters, "the text must contain tokens that end inside a character"
    for max_tokens, overlap in [(100, 0), (100, 50), (101, 37), (800, 400)]:
        chunks = chunk_text(text, O200K, max_tokens, overlap)
        assert_exact_cover(text, chunks, max_tokens)
        assert_token_counts(text, chunks)


def _invalid(piece: bytes) -> bool:
    try:
        piece.decode()
    except UnicodeDecodeError:
        return True
    return False


def test_window_end_inside_a_character_moves_back_to_its_start() -> None:
    text = "é" * 300  # two tokens per character: odd token counts end mid-character
    chunks = chunk_text(text, ByteTokens(), max_tokens=101, overlap_tokens=0)
    assert [chunk.tokens for chunk in chunks] == [100] * 6
    assert "".join(chunk.text for chunk in chunks) == text


def test_overlap_start_inside_a_character_takes_the_whole_character() -> None:
    text = "😀" * 100  # four tokens per emoji
    chunks = chunk_text(text, ByteTokens(), max_tokens=102, overlap_tokens=49)
    # 102 tokens end inside the 26th emoji: the window ends after 25 (100 tokens); its
    # overlap would start 49 tokens back, inside an emoji, so it starts at that emoji.
    assert (chunks[0].start, chunks[0].end, chunks[0].tokens) == (0, 25, 100)
    assert (chunks[1].start, chunks[1].tokens) == (12, 100)
    assert_exact_cover(text, chunks, 102)


# --- natural breaks ------------------------------------------------------------------------


def first_chunk(text: str) -> str:
    return chunk_text(text, CharTokens(), max_tokens=100, overlap_tokens=0)[0].text


def test_a_paragraph_break_wins_over_a_later_sentence_end() -> None:
    text = "a" * 86 + "\n\n" + "bbbbb. " + "c " * 200
    assert first_chunk(text) == "a" * 86 + "\n\n"


def test_a_sentence_end_wins_over_later_whitespace() -> None:
    text = "a" * 86 + ". " + "b b b b b b b b " + "c" * 200
    assert first_chunk(text) == "a" * 86 + ". "


def test_a_sentence_may_end_in_a_closing_quote() -> None:
    text = "a" * 85 + '?" ' + "b b b b b b b b " + "c" * 200
    assert first_chunk(text) == "a" * 85 + '?" '


def test_a_decimal_point_is_not_a_sentence_end() -> None:
    text = "a" * 90 + " x3.14" + "b" * 200
    assert first_chunk(text) == "a" * 90 + " "


def test_a_full_width_stop_ends_a_sentence_without_a_space() -> None:
    text = "字" * 90 + "\u3002" + "字" * 300
    assert first_chunk(text) == "字" * 90 + "\u3002"


def test_without_a_break_in_the_last_15_percent_the_window_is_full() -> None:
    text = "a" * 50 + ".\n\n" + "b" * 300  # the only break is too early to use
    assert first_chunk(text) == "a" * 50 + ".\n\n" + "b" * 47


def test_the_overlap_counts_back_from_where_the_window_ended() -> None:
    text = "a" * 86 + "\n\n" + "b" * 300
    chunks = chunk_text(text, CharTokens(), max_tokens=100, overlap_tokens=20)
    assert (chunks[0].end, chunks[1].start) == (88, 68)


def test_chunks_of_nothing_but_whitespace_are_left_out() -> None:
    text = "a" * 50 + " " * 300 + "b" * 50
    chunks = chunk_text(text, CharTokens(), max_tokens=100, overlap_tokens=0)
    assert [(chunk.index, chunk.start, chunk.end) for chunk in chunks] == [
        (0, 0, 100),
        (1, 300, 400),
    ]


# --- long inputs ---------------------------------------------------------------------------


def test_text_beyond_one_tokenizer_call_is_chunked() -> None:
    # bpe-openai refuses one call of a million characters; a 1 MB upload is common.
    paragraphs = [words(150, seed) + ".\n\n" for seed in range(1200)]
    text = "".join(paragraphs) + MULTILINGUAL * 20
    assert len(text) > 1_000_000
    chunks = chunk_text(text, O200K)
    assert_exact_cover(text, chunks, 800)
    assert len(chunks) > 400


def test_encoding_in_segments_gives_the_tokens_of_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # o200k joins ".\n/" into one token: a segment must not be cut before such a "/".
    lines = [("/" if seed % 3 else "") + words(12, seed) + "." for seed in range(2000)]
    text = "\n".join(lines) + "\n/path a/b  c\n\n\n" + MULTILINGUAL
    whole = chunk_text(text, O200K, 200, 60)
    monkeypatch.setattr(chunking, "_SEGMENT_CHARS", 700)
    assert chunking._encode(text, O200K) == O200K.encode_ordinary(text)
    assert chunk_text(text, O200K, 200, 60) == whole


def test_text_without_any_whitespace_is_segmented_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking, "_SEGMENT_CHARS", 1000)
    text = "".join(random.Random(3).choices("abcdefghij0123456789😀é東", k=20_000))
    assert_exact_cover(text, chunk_text(text, O200K, 100, 50), 100)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens", "named"),
    [
        (99, 0, "max_tokens"),
        (4097, 0, "max_tokens"),
        (True, 0, "max_tokens"),
        (100.0, 0, "max_tokens"),
        (100, 51, "overlap_tokens"),
        (100, -1, "overlap_tokens"),
        (800, False, "overlap_tokens"),
    ],
)
def test_sizes_are_checked(max_tokens: object, overlap_tokens: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        chunk_text("text", O200K, max_tokens, overlap_tokens)  # type: ignore[arg-type]


def test_limits_are_inclusive() -> None:
    assert chunk_text("text", O200K, 100, 50)
    assert chunk_text("text", O200K, 4096, 2048)


def test_an_encoder_without_token_bytes_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes of its tokens"):
        chunk_text("text", EncodeOnly())


def test_unpaired_surrogates_are_refused() -> None:
    with pytest.raises(ValueError, match="surrogates"):
        chunk_text("broken \ud800 text", O200K)


# --- chunking_strategy ---------------------------------------------------------------------


def static(max_tokens: object, overlap: object) -> dict[str, object]:
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap},
    }


def test_absent_or_auto_strategy_is_800_and_400() -> None:
    assert parse_chunking_strategy(None) == AUTO
    assert parse_chunking_strategy({"type": "auto"}) == AUTO
    assert ChunkingStrategy(800, 400) == AUTO


@pytest.mark.parametrize(("max_tokens", "overlap"), [(100, 0), (100, 50), (4096, 2048), (512, 7)])
def test_static_strategy(max_tokens: int, overlap: int) -> None:
    assert parse_chunking_strategy(static(max_tokens, overlap)) == ChunkingStrategy(
        max_tokens, overlap
    )


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("auto", "chunking_strategy"),
        ([], "chunking_strategy"),
        ({}, "chunking_strategy.type"),
        ({"type": "dynamic"}, "chunking_strategy.type"),
        ({"type": "auto", "static": {}}, "chunking_strategy.static"),
        ({"type": "static"}, "chunking_strategy.static"),
        ({"type": "static", "static": None}, "chunking_strategy.static"),
        (
            {"type": "static", "static": {"chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 800}},
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 0, "x": 1},
            },
            "chunking_strategy.static.x",
        ),
        (static(99, 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(4097, 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static("800", 400), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(True, 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(800.0, 400), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(800, 401), "chunking_strategy.static.chunk_overlap_tokens"),
        (static(800, -1), "chunking_strategy.static.chunk_overlap_tokens"),
        (static(800, True), "chunking_strategy.static.chunk_overlap_tokens"),
        (static(800, None), "chunking_strategy.static.chunk_overlap_tokens"),
    ],
)
def test_invalid_strategies_name_the_field(value: object, param: str) -> None:
    with pytest.raises(ValueError, match=f"'{param}'") as caught:
        parse_chunking_strategy(value)
    assert isinstance(caught.value, ChunkingStrategyError)
    assert caught.value.param == param


def test_overlap_limit_in_the_message_is_half_the_chunk_size() -> None:
    with pytest.raises(ValueError, match="from 0 to 300"):
        parse_chunking_strategy(static(600, 301))


def test_strategy_itself_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_chunk_size_tokens"):
        ChunkingStrategy(50, 10)


def test_strategy_json_is_openais_response_shape() -> None:
    assert strategy_json(AUTO) == static(800, 400)
    strategy = ChunkingStrategy(1000, 100)
    assert parse_chunking_strategy(strategy_json(strategy)) == strategy
