"""Waits after transient errors (one definition for every loop of the runtime)."""

from __future__ import annotations


class Backoff:
    """Waits after transient errors: 50 ms, doubling up to 2 s; ``reset`` on success."""

    __slots__ = ("first_s", "cap_s", "delay_s")

    def __init__(self, first_s: float = 0.05, cap_s: float = 2.0) -> None:
        self.first_s, self.cap_s, self.delay_s = first_s, cap_s, first_s

    def next(self) -> float:
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.cap_s)
        return delay

    def reset(self) -> None:
        self.delay_s = self.first_s
