"""Stop sequences: cut generated text at the first stop string, never emitting any part of it.

Text is held back only while its tail could still become a stop string, so a stream is delayed by
at most ``len(longest stop) - 1`` characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Piece", "StopMatcher"]

T = TypeVar("T")


@dataclass(slots=True)
class Piece(Generic[T]):
    """A run of generated text with what belongs to it (e.g. the token's logprob)."""

    text: str
    meta: T


class StopMatcher(Generic[T]):
    def __init__(self, stops: list[str]):
        self._stops = [s for s in stops if s]
        self._pending: list[Piece[T]] = []
        self.stopped = False

    def feed(self, piece: Piece[T]) -> list[Piece[T]]:
        """Add a piece; return the pieces now safe to emit. Sets ``stopped`` on a match."""
        if not self._stops:
            return [piece]
        self._pending.append(piece)
        text = "".join(p.text for p in self._pending)
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            return self._take(cut, truncate=True)
        return self._take(len(text) - self._held_back(text), truncate=False)

    def flush(self) -> list[Piece[T]]:
        """Generation ended: whatever is pending is ordinary text."""
        out, self._pending = self._pending, []
        return out

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

    def _take(self, upto: int, *, truncate: bool) -> list[Piece[T]]:
        out: list[Piece[T]] = []
        used = 0
        rest: list[Piece[T]] = []
        for i, piece in enumerate(self._pending):
            end = used + len(piece.text)
            if end <= upto:
                out.append(piece)
                used = end
                continue
            if truncate and used < upto:
                out.append(Piece(piece.text[: upto - used], piece.meta))
            rest = [] if truncate else self._pending[i:]
            break
        self._pending = rest
        return out
