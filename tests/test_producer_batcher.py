"""The batcher (producers/batcher.py): byte, record and linger bounds; order; wire format
(both shapes of AGENTSTREAM_PRODUCER_WIRE)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agentstream.contract.settings import Settings
from agentstream.producers.batcher import RECORD_FRAMING_BYTES, Batch, Batcher
from tests.support.clock import FakeClock


def rec(i: int, pad: int = 0) -> bytes:
    return json.dumps({"i": i, "pad": "x" * pad}, separators=(",", ":")).encode()


def items(batch: Batch) -> list[int]:
    return [r["i"] for r in json.loads(batch.value)]


def test_sealed_batch_is_a_json_array_of_the_records_in_order() -> None:
    b = Batcher(max_bytes=1000, max_records=3, linger_s=1.0)
    assert b.add("t", 0, rec(1)) == ()
    assert b.add("t", 0, rec(2)) == ()
    (batch,) = b.add("t", 0, rec(3))
    assert (batch.topic, batch.partition, batch.records) == ("t", 0, 3)
    assert items(batch) == [1, 2, 3]
    assert batch.value == b"[" + b",".join([rec(1), rec(2), rec(3)]) + b"]"
    assert b.buffered_records == 0


def test_byte_bound_is_never_exceeded_and_nothing_is_lost() -> None:
    b = Batcher(max_bytes=500, max_records=10_000, linger_s=1.0)
    out: list[Batch] = []
    for i in range(300):
        out.extend(b.add("t", 0, rec(i, pad=i % 50)))
    out.extend(b.drain())
    assert all(len(x.value) <= 500 for x in out)
    assert [i for x in out for i in items(x)] == list(range(300))
    assert sum(x.records for x in out) == 300
    # Batches are full, not fragments: each but the last is within one record of the bound.
    assert all(len(x.value) > 500 - 70 for x in out[:-1])


def test_record_larger_than_the_bound_goes_alone() -> None:
    b = Batcher(max_bytes=100, max_records=100, linger_s=1.0)
    b.add("t", 0, rec(1))
    sealed = b.add("t", 0, rec(2, pad=300))
    assert [items(x) for x in sealed] == [[1], [2]]
    assert sealed[1].records == 1
    assert len(b) == 0


def test_partitions_and_topics_accumulate_separately() -> None:
    b = Batcher(max_bytes=10_000, max_records=2, linger_s=1.0)
    assert b.add("a", 0, rec(1)) == ()
    assert b.add("a", 1, rec(2)) == ()
    assert b.add("b", 0, rec(3)) == ()
    (batch,) = b.add("a", 0, rec(4))
    assert (batch.topic, batch.partition, items(batch)) == ("a", 0, [1, 4])
    rest = {(x.topic, x.partition): items(x) for x in b.drain()}
    assert rest == {("a", 1): [2], ("b", 0): [3]}


def test_linger_seals_only_batches_that_waited_long_enough() -> None:
    clock = FakeClock()
    b = Batcher(max_bytes=10_000, max_records=100, linger_s=0.02, clock=clock)
    b.add("t", 0, rec(1))
    clock.now = 0.015
    b.add("t", 1, rec(2))
    assert b.next_deadline() == pytest.approx(0.02)
    assert b.due() == []
    clock.now = 0.021
    (batch,) = b.due()
    assert (batch.partition, items(batch)) == (0, [1])
    assert b.next_deadline() == pytest.approx(0.035)
    clock.now = 0.04
    assert [items(x) for x in b.due()] == [[2]]
    assert b.next_deadline() is None


def test_buffered_count_follows_adds_and_seals() -> None:
    b = Batcher(max_bytes=10_000, max_records=5, linger_s=1.0)
    for i in range(7):
        b.add("t", i % 2, rec(i))
    assert b.buffered_records == 7
    b.drain()
    assert b.buffered_records == 0


def test_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        Batcher(max_bytes=2, max_records=1, linger_s=0)
    with pytest.raises(ValueError):
        Batcher(max_bytes=100, max_records=0, linger_s=0)


# --- AGENTSTREAM_PRODUCER_WIRE: the two message shapes -------------------------------------


def test_batch_wire_sends_arrays_without_a_key() -> None:
    b = Batcher(max_bytes=1000, max_records=2, linger_s=1.0, wire="batch")
    assert b.add("t", 1, rec(1), b"session-a") == ()
    (batch,) = b.add("t", 1, rec(2), b"session-a")
    assert isinstance(json.loads(batch.value), list)
    assert (batch.records, batch.messages, batch.size) == (2, (), len(batch.value))
    assert batch.as_array() == batch.value


def test_record_wire_seals_keyed_json_objects_in_order() -> None:
    b = Batcher(max_bytes=10_000, max_records=3, linger_s=1.0, wire="record")
    out: list[Batch] = []
    for i in range(7):
        out.extend(b.add("t", 0, rec(i), f"session-{i % 2}".encode()))
    out.extend(b.drain())
    assert [x.records for x in out] == [3, 3, 1]
    messages = [m for x in out for m in x.messages]
    # Each message is one record's JSON object, the bytes given, with its own key.
    assert messages == [(f"session-{i % 2}".encode(), rec(i)) for i in range(7)]
    assert all(isinstance(json.loads(v), dict) for _, v in messages)
    assert all(x.value == b"" for x in out)  # nothing is sent as an array
    assert [x.size for x in out] == [sum(len(v) for _, v in x.messages) for x in out]
    # A failed batch can still be re-published as one array of the same records.
    assert [json.loads(x.as_array()) for x in out] == [
        [json.loads(v) for _, v in x.messages] for x in out
    ]


def test_record_wire_counts_keys_and_framing_against_the_byte_bound() -> None:
    key = b"0" * 36
    per_message = len(rec(1, pad=50)) + len(key) + RECORD_FRAMING_BYTES
    b = Batcher(max_bytes=per_message * 3, max_records=100, linger_s=1.0, wire="record")
    out: list[Batch] = []
    for i in range(10):
        out.extend(b.add("t", 0, rec(i % 10, pad=50), key))
    out.extend(b.drain())
    assert [x.records for x in out] == [3, 3, 3, 1]
    assert all(
        sum(len(k or b"") + len(v) + RECORD_FRAMING_BYTES for k, v in x.messages) <= b.max_bytes
        for x in out
    )


def test_record_wire_lingers_per_partition_like_batches() -> None:
    clock = FakeClock()
    b = Batcher(max_bytes=10_000, max_records=100, linger_s=0.5, wire="record", clock=clock)
    b.add("t", 0, rec(1), b"a")
    clock.now = 0.3
    b.add("t", 1, rec(2), b"b")
    assert b.next_deadline() == 0.5
    clock.now = 0.5
    (due,) = b.due()
    assert (due.partition, due.messages) == (0, ((b"a", rec(1)),))
    assert b.buffered_records == 1


def test_the_wire_setting_reads_the_environment_and_refuses_other_shapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENTSTREAM_PRODUCER_WIRE", raising=False)
    assert Settings(_env_file=None).producer_wire == "batch"
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_WIRE", "record")
    assert Settings().producer_wire == "record"
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_WIRE", "records")
    with pytest.raises(ValidationError, match="'record' or 'batch'"):
        Settings()
