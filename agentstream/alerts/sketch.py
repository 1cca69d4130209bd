"""Latency percentiles in bounded, mergeable state: exact while small, a DDSketch beyond.

Up to ``EXACT_MAX`` values are kept as they are and a percentile is numpy's default (linear
interpolation between closest ranks), exactly. Past that the values move into a DDSketch
(Masson, Rim, Lee, VLDB 2019): value x > 0 counts in bucket ceil(log_gamma(x)) with
gamma = (1 + a) / (1 - a); the estimate of the value at rank r is within relative error
``RELATIVE_ERROR`` (a) of the true value at that rank. Zeros (latency 0 ms) have a bucket
of their own. State is a dict of bucket counts: JSON-serializable and mergeable by adding.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EXACT_MAX", "RELATIVE_ERROR", "LatencySketch"]

RELATIVE_ERROR = 0.01
EXACT_MAX = 256
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)


def _bucket(x: float) -> int:
    return math.ceil(math.log(x) / _LOG_GAMMA)


def _value(index: int) -> float:
    # The point of the bucket (gamma^(i-1), gamma^i] whose relative error is at most a
    # to both ends.
    return 2 * _GAMMA**index / (_GAMMA + 1)


class LatencySketch:
    __slots__ = ("buckets", "count", "exact", "zeros")

    def __init__(self) -> None:
        self.exact: list[float] | None = []
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, x: float) -> None:
        self.count += 1
        if self.exact is not None:
            self.exact.append(x)
            if len(self.exact) > EXACT_MAX:
                values, self.exact = self.exact, None
                self.count -= len(values)
                for v in values:
                    self.add(v)
            return
        if x <= 0:
            self.zeros += 1
        else:
            i = _bucket(x)
            self.buckets[i] = self.buckets.get(i, 0) + 1

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        if self.exact is not None:
            values = sorted(self.exact)
            pos = q * (len(values) - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, len(values) - 1)
            return values[lo] + (values[hi] - values[lo]) * (pos - lo)
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if rank < seen:
                return _value(i)
        return _value(max(self.buckets))

    def to_json(self) -> dict[str, Any]:
        if self.exact is not None:
            return {"x": self.exact}
        return {"b": {str(k): v for k, v in self.buckets.items()}, "z": self.zeros}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencySketch:
        sketch = cls()
        if "x" in data:
            sketch.exact = list(data["x"])
            sketch.count = len(sketch.exact)
        else:
            sketch.exact = None
            sketch.buckets = {int(k): int(v) for k, v in data["b"].items()}
            sketch.zeros = int(data["z"])
            sketch.count = sketch.zeros + sum(sketch.buckets.values())
        return sketch
