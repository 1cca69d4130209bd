"""A monotonic clock the test sets by hand, for code that takes ``monotonic=``."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
