"""Durations in fixed log buckets: the same bounds in every process, so histograms add up
exactly (two processes' buckets summed are the buckets of all their durations together) and
a quantile read from the sum is the one a single process timing everything would report.

Bucket `i` holds durations in (BOUNDS[i-1], BOUNDS[i]]: 10 µs and below in the first, each
next bound 2^(1/4) (19%) higher, up to ~2 minutes; the last bucket holds everything above.
A quantile is the upper bound of the bucket its rank falls in, never above the maximum seen:
at most 19% high, and the same wherever the durations were measured."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field

FLOOR = 1e-5  # seconds: the first bucket's upper bound
GROWTH = 2**0.25
BUCKETS = 96
BOUNDS = tuple(FLOOR * GROWTH**i for i in range(BUCKETS - 1))


def bucket(seconds: float) -> int:
    """The bucket `seconds` falls in."""
    return bisect_left(BOUNDS, seconds)


def quantile(buckets: list[int], q: float, maximum: float) -> float:
    """The `q` quantile of the durations counted in `buckets` (0.0 when there are none)."""
    count = sum(buckets)
    if count == 0:
        return 0.0
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return min(BOUNDS[index], maximum) if index < len(BOUNDS) else maximum
    return maximum


@dataclass
class Histogram:
    """Count, total, maximum, items handled and bucket counts of one name's durations."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0
    items: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, seconds: float, items: int = 0) -> None:
        self.count += 1
        self.total += seconds
        self.items += items
        self.maximum = max(self.maximum, seconds)
        self.buckets[bucket(seconds)] += 1

    def tally(self, n: int) -> None:
        """A count with no duration (cache hits, say): `items` grows, nothing is bucketed."""
        self.items += n

    def merge(self, other: Histogram) -> None:
        self.count += other.count
        self.total += other.total
        self.items += other.items
        self.maximum = max(self.maximum, other.maximum)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def quantile(self, q: float) -> float:
        return quantile(self.buckets, q, self.maximum)

    def copy(self) -> Histogram:
        return Histogram(self.count, self.total, self.maximum, self.items, list(self.buckets))

    def export(self) -> dict[str, object]:
        """As plain data (JSON), the buckets sparse: {index: count} of the non-empty ones."""
        sparse = {str(i): n for i, n in enumerate(self.buckets) if n}
        return {
            "count": self.count,
            "total": self.total,
            "maximum": self.maximum,
            "items": self.items,
            "buckets": sparse,
        }

    @classmethod
    def load(cls, data: Mapping[str, object]) -> Histogram:
        buckets = [0] * BUCKETS
        sparse = data["buckets"]
        assert isinstance(sparse, Mapping)
        for index, n in sparse.items():
            buckets[int(index)] = int(n)
        return cls(
            int(data["count"]),  # type: ignore[call-overload]
            float(data["total"]),  # type: ignore[arg-type]
            float(data["maximum"]),  # type: ignore[arg-type]
            int(data["items"]),  # type: ignore[call-overload]
            buckets,
        )
