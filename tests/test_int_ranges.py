"""The integer-range grammar matches exactly the canonical integers of its range: checked
exhaustively around many ranges, through a regular expression read off the GBNF (its literals,
digit classes, sequences, alternatives and groups are regular)."""

from __future__ import annotations

import random
import re

import pytest

from chatgate.providers.local.int_ranges import MAX_DIGITS, integer_range


def _regex(gbnf: str) -> re.Pattern[str]:
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), gbnf).replace(" ", "")
    return re.compile(pattern)


CASES = [
    (-999, 999),
    (0, 0),
    (5, 5),
    (0, 9),
    (1, 10),
    (7, 1234),
    (10, 99),
    (100, 199),
    (123, 456),
    (-45, -3),
    (-1, 0),
    (-1, 1),
    (-1000, 1000),
    (99, 101),
    (190, 1009),
    (0, 100000),
]


@pytest.mark.parametrize(("low", "high"), CASES)
def test_exactly_the_range(low: int, high: int) -> None:
    pattern = _regex(integer_range(low, high))
    for value in range(min(low, -1100) - 5, max(high, 1100) + 6):
        assert bool(pattern.fullmatch(str(value))) == (low <= value <= high), value


def test_random_ranges() -> None:
    rng = random.Random(20261208)
    for _ in range(300):
        low = rng.randint(-5000, 5000)
        high = low + rng.randint(0, 3000)
        pattern = _regex(integer_range(low, high))
        for value in range(low - 60, high + 61):
            assert bool(pattern.fullmatch(str(value))) == (low <= value <= high), (low, high)


def test_no_leading_zeros_or_negative_zero() -> None:
    pattern = _regex(integer_range(-50, 50))
    for text in ("-0", "007", "00", "+5", "05", "-05"):
        assert not pattern.fullmatch(text)


def test_unbounded_ends() -> None:
    above = _regex(integer_range(42, None))
    assert above.fullmatch("42") and above.fullmatch("9" * MAX_DIGITS)
    assert not above.fullmatch("41") and not above.fullmatch("-42")
    assert not above.fullmatch("1" + "0" * MAX_DIGITS)
    below = _regex(integer_range(None, -7))
    assert below.fullmatch("-7") and below.fullmatch("-123456") and not below.fullmatch("-6")


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError):
        integer_range(3, 2)
