"""upsert.dedupe: one item per record id, by the entity's rule (pure logic, no services)."""

from __future__ import annotations

import uuid
from typing import Any

from agentstream.contract.entities import Session
from agentstream.sinks.postgres.upsert import dedupe
from tests.sink_records import session


def _same(record: Any) -> Any:
    return record


def test_distinct_ids_keep_every_item_in_order() -> None:
    records = [session(uuid.uuid4()) for _ in range(5)]
    assert dedupe("sessions", records, _same) == records


def test_a_repeated_id_keeps_the_winner_in_the_first_ones_place() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    first, other, later = session(a, updated=1), session(b), session(a, updated=2)
    assert dedupe("sessions", [first, other, later], _same) == [later, other]
    # immutable entities: the first write wins
    assert dedupe("events", [first, other, later], _same) == [first, other]


def test_records_without_an_id_are_one_id() -> None:
    bare = [Session(user_id="u"), Session(user_id="v")]
    assert dedupe("events", bare, _same) == [bare[0]]
