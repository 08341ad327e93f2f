"""A circuit breaker per upstream deployment: open after N consecutive failures, then one
half-open probe after a cooldown; its success closes the circuit, its failure reopens it."""

from __future__ import annotations

import time
from typing import Literal

__all__ = ["Breaker"]


class Breaker:
    def __init__(self, failures: int, cooldown: float):
        self._threshold = failures
        self._cooldown = cooldown
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.transitions: list[str] = []
        """States entered, in order (for status and tests)."""

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        if self._probing or time.monotonic() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - time.monotonic())

    def available(self) -> bool:
        """May a request go to this deployment now?"""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probing)

    def started(self) -> None:
        """A request was sent; in half-open it is the single probe."""
        if self._opened_at is not None and not self._probing:
            self._probing = True
            self.transitions.append("half_open")

    def succeeded(self) -> None:
        if self._opened_at is not None:
            self.transitions.append("closed")
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = time.monotonic()
            self.transitions.append("open")
        self._probing = False
