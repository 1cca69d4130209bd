"""uuid7 (producers/ids.py): RFC 9562 layout, time order, monotonicity, reproducibility."""

from __future__ import annotations

import random
import uuid

import pytest

from agentstream.producers.ids import UUID7Generator, uuid7, uuid7_time_ms


def test_version_and_variant_bits() -> None:
    for _ in range(200):
        value = uuid7()
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert (value.int >> 76) & 0xF == 0x7


def test_carries_the_given_millisecond() -> None:
    gen = UUID7Generator()
    ms = 1_764_172_800_123
    assert uuid7_time_ms(gen(ms)) == ms


def test_strictly_increasing_within_one_millisecond() -> None:
    gen = UUID7Generator()
    ids = [gen(1_000) for _ in range(5_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # Their canonical strings sort the same way (what PostgreSQL's uuid ordering sees).
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)


def test_increasing_across_milliseconds_and_when_the_clock_steps_back() -> None:
    gen = UUID7Generator()
    ids = [gen(ms) for ms in (10, 10, 11, 12, 9, 5, 12, 13)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # After the clock went back, ids keep the last timestamp rather than going backwards.
    assert uuid7_time_ms(ids[4]) == 12


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    class MaxBits(random.Random):
        def getrandbits(self, k: int) -> int:
            return (1 << k) - 1

    gen = UUID7Generator(rng=MaxBits())
    first = gen(100)  # counter seeded at 2**41 - 1: room for 2**41 more in this millisecond
    gen._counter = (1 << 42) - 1  # exhaust it
    nxt = gen(100)
    assert uuid7_time_ms(nxt) == 101
    assert nxt > first


def test_seeded_generator_is_reproducible() -> None:
    a = UUID7Generator(rng=random.Random(42))
    b = UUID7Generator(rng=random.Random(42))
    assert [a(5_000 + i // 3) for i in range(50)] == [b(5_000 + i // 3) for i in range(50)]


def test_default_clock_is_now() -> None:
    import time

    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(value) <= after


def test_rejects_out_of_range_time_and_non_v7() -> None:
    with pytest.raises(ValueError, match="outside"):
        UUID7Generator()(-1)
    with pytest.raises(ValueError, match="version-4"):
        uuid7_time_ms(uuid.uuid4())
