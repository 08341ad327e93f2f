"""Keyset pagination by ``(created_at, id)``: OpenAI's ``after``/``limit``/``order`` pages,
stable while rows are added."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, or_
from sqlalchemy.orm import InstrumentedAttribute

__all__ = ["page_after", "page_order"]

_S = TypeVar("_S", bound=Select[Any])


def page_after(
    query: _S,
    created: InstrumentedAttribute[float],
    ident: InstrumentedAttribute[str],
    pivot: tuple[float, str],
    *,
    descending: bool,
) -> _S:
    """Rows after ``pivot`` (the cursor row's created time and id) in the page order."""
    if descending:
        return query.where(or_(created < pivot[0], (created == pivot[0]) & (ident < pivot[1])))
    return query.where(or_(created > pivot[0], (created == pivot[0]) & (ident > pivot[1])))


def page_order(
    created: InstrumentedAttribute[float], ident: InstrumentedAttribute[str], *, descending: bool
) -> tuple[Any, Any]:
    return (created.desc(), ident.desc()) if descending else (created, ident)
