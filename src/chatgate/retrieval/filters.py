"""OpenAI's attribute filters (``ComparisonFilter`` / ``CompoundFilter``) evaluated against a
file's attributes.

A missing attribute never satisfies ``eq``, ``in`` or an order comparison, and always satisfies
``ne`` and ``nin``. Order comparisons apply to numbers with numbers and strings with strings
(ISO dates compare correctly as strings); mixed kinds do not match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.protocol.vector_stores import ComparisonFilter, CompoundFilter

__all__ = ["matches"]

_MISSING = object()


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _compare(rule: ComparisonFilter, attributes: Mapping[str, Any]) -> bool:
    actual = attributes.get(rule.key, _MISSING)
    expected = rule.value
    kind = rule.type
    if kind in ("in", "nin"):
        options = expected if isinstance(expected, list) else [expected]
        found = actual is not _MISSING and any(
            _same_kind(actual, option) and actual == option for option in options
        )
        return found if kind == "in" else not found
    if kind in ("eq", "ne"):
        equal = actual is not _MISSING and _same_kind(actual, expected) and actual == expected
        return equal if kind == "eq" else not equal
    if actual is _MISSING or isinstance(expected, list) or not _same_kind(actual, expected):
        return False
    if isinstance(actual, bool):
        return False
    if kind == "gt":
        return bool(actual > expected)
    if kind == "gte":
        return bool(actual >= expected)
    if kind == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def matches(rule: ComparisonFilter | CompoundFilter | None, attributes: Mapping[str, Any]) -> bool:
    """Whether a file with ``attributes`` passes ``rule`` (no rule: every file passes)."""
    if rule is None:
        return True
    if isinstance(rule, CompoundFilter):
        results = (matches(inner, attributes) for inner in rule.filters)
        return all(results) if rule.type == "and" else any(results)
    return _compare(rule, attributes)
