"""GBNF for the decimal integers of a range — what JSON schema's ``minimum``, ``maximum``,
``exclusiveMinimum`` and ``exclusiveMaximum`` ask of an ``integer`` (llama-cpp-python's schema
converter ignores them: a tool whose argument must lie in (-1000, 1000) got 10^15).

Canonical JSON integers only: no leading zeros, no ``-0``, no plus sign. Each range of equal
digit counts is split at its first differing digit into a low branch, a middle of free digits,
and a high branch, recursively."""

from __future__ import annotations

__all__ = ["MAX_DIGITS", "integer_range"]

MAX_DIGITS = 15
"""Digits an unbounded end may reach (what llama.cpp's converter allows an integer)."""


def integer_range(low: int | None, high: int | None) -> str:
    """A GBNF expression matching exactly the integers in [``low``, ``high``] (None: unbounded,
    up to ``MAX_DIGITS`` digits); raises ValueError for an empty range."""
    limit = 10**MAX_DIGITS - 1
    low = -limit if low is None else max(low, -limit)
    high = limit if high is None else min(high, limit)
    if low > high:
        raise ValueError(f"no integer lies in [{low}, {high}]")
    parts: list[str] = []
    if low < 0:  # the negatives, as "-" and their magnitudes
        parts.append(f'"-" ({_naturals(max(1, -high), -low)})')
    if high >= 0:
        parts.append(_naturals(max(0, low), high))
    return " | ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]


def _naturals(low: int, high: int) -> str:
    """Non-negative integers in [low, high], by digit count."""
    alternatives = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        last = 10**digits - 1
        alternatives.append(_same_length(str(max(low, first)), str(min(high, last))))
    return " | ".join(alternatives)


def _same_length(low: str, high: str) -> str:
    """Digit strings from ``low`` to ``high`` (equal lengths)."""
    if low == high:
        return f'"{low}"'
    common = 0
    while low[common] == high[common]:
        common += 1
    prefix = f'"{low[:common]}" ' if common else ""
    rest = len(low) - common - 1
    a, b = int(low[common]), int(high[common])
    branches = []
    if rest == 0:
        branches.append(_digit_class(a, b))
    else:
        if low[common + 1 :] == "0" * rest:
            a -= 1  # the low branch is whole: fold it into the middle
        else:
            branches.append(f'"{a}" ({_same_length(low[common + 1 :], "9" * rest)})')
        top = b
        if high[common + 1 :] == "9" * rest:
            top += 1  # the high branch is whole: fold it into the middle
        if top - a > 1:
            branches.append(f"{_digit_class(a + 1, top - 1)} {_any_digits(rest)}")
        if top == b:
            branches.append(f'"{b}" ({_same_length("0" * rest, high[common + 1 :])})')
    body = " | ".join(branches)
    return f"{prefix}({body})" if prefix and len(branches) > 1 else prefix + body


def _digit_class(first: int, last: int) -> str:
    return f'"{first}"' if first == last else f"[{first}-{last}]"


def _any_digits(count: int) -> str:
    return " ".join(["[0-9]"] * count)
