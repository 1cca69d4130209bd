"""The PostgreSQL sink against a real, migrated database (no Kafka): rules, idempotency, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from agentstream.sinks.postgres import (
    PostgresSink,
    TerminalSinkError,
    TransientSinkError,
)
from tests.sink_records import agent, at, document, event, execution, items, llm, session

pytestmark = pytest.mark.integration

TABLES = ("sessions", "agents", "agent_executions", "llm_interactions", "events", "documents")


@pytest.fixture
def sink(database: str) -> Iterator[PostgresSink]:
    s = PostgresSink(database)
    yield s
    s.close()


def dump(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(conninfo) as conn:
        out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}
        out["inferred"] = conn.execute(
            "SELECT entity, id FROM agentstream.inferred_members ORDER BY 1, 2"
        ).fetchall()
        out["change_log"] = conn.execute(
            "SELECT entity, id FROM agentstream.change_log ORDER BY seq"
        ).fetchall()
        return out


def test_children_before_parents_infer_parents_that_the_real_records_replace(
    sink: PostgresSink, database: str
) -> None:
    sid, aid = uuid.uuid4(), uuid.uuid4()
    ev, li, doc, ex = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sink.write(items("events", [event(ev, sid, user="from-event")]))
    sink.write(
        items("llm_interactions", [llm(li, sid, aid)])
        + items("documents", [document(doc, sid, aid)])
    )
    sink.write(items("agent_executions", [execution(ex, aid, sid, "running")]))
    state = dump(database)
    assert [r[0] for r in state["events"]] == [ev]
    assert state["sessions"][0][:2] == (sid, "from-event")  # inferred from the event's user
    assert state["agents"][0][1:3] == ("unknown", "unknown")
    assert sorted(state["inferred"]) == sorted([("sessions", sid), ("agents", aid)])

    # The real records carry OLDER timestamps than the inferred rows: they win anyway.
    real_session = session(sid, updated=-3600, user="real-user", metadata={"plan": "pro"})
    real_agent = agent(aid, sid, updated=-3600, name="researcher", type="rag", status="busy")
    sink.write(items("sessions", [real_session]) + items("agents", [real_agent]))
    state = dump(database)
    assert state["sessions"] == [(sid, "real-user", at(0), at(-3600), {"plan": "pro"})]
    assert state["agents"] == [(aid, "researcher", "rag", {}, "busy", sid, at(0), at(-3600))]
    assert state["inferred"] == []
    # Analytics copies a session's user and an agent's type: the replacement is logged.
    assert {("sessions", sid), ("agents", aid)} <= set(state["change_log"])

    # Once real, the ordinary rule applies again: an older state no longer wins.
    sink.write(items("sessions", [session(sid, updated=-7200, user="stale")]))
    assert dump(database)["sessions"][0][1] == "real-user"


def test_latest_state_wins_whatever_the_arrival_order(sink: PostgresSink, database: str) -> None:
    sid, aid, xid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    versions = [session(sid, updated=t, user=f"v{t}") for t in (5, 1, 9, 3)]
    # Two versions in one flush, the rest in later flushes, newest in the middle.
    sink.write(items("sessions", versions[:2]))
    sink.write(items("sessions", versions[2:]))
    assert dump(database)["sessions"][0][1] == "v9"

    sink.write(items("agents", [agent(aid, sid, updated=2, name="a2")]))
    sink.write(items("agents", [agent(aid, sid, updated=1, name="a1")]))
    assert dump(database)["agents"][0][1] == "a2"

    order = ["running", "completed", "pending", "running"]
    sink.write(items("agent_executions", [execution(xid, aid, sid, order[0])]))
    sink.write(items("agent_executions", [execution(xid, aid, sid, s) for s in order[1:]]))
    row = dump(database)["agent_executions"][0]
    assert row[5] == "completed" and row[4] == {"status": "completed"}
    # A terminal state does not replace another terminal state (equal rank: first wins).
    sink.write(items("agent_executions", [execution(xid, aid, sid, "failed")]))
    assert dump(database)["agent_executions"][0][5] == "completed"


def test_replaying_a_flush_changes_no_row(sink: PostgresSink, database: str) -> None:
    sid, aid = uuid.uuid4(), uuid.uuid4()
    batch = (
        items("sessions", [session(sid, updated=1)])
        + items("agents", [agent(aid, sid)])
        + items("agent_executions", [execution(uuid.uuid4(), aid, sid, "completed")])
        + items("llm_interactions", [llm(uuid.uuid4(), sid, aid) for _ in range(20)])
        + items("events", [event(uuid.uuid4(), sid) for _ in range(50)])
        + items("documents", [document(uuid.uuid4(), sid)])
    )
    first = sink.write(batch)
    assert first.rejected == [] and sum(first.accepted.values()) == len(batch)
    before = dump(database)
    assert len(before["change_log"]) == 21  # 20 interactions + 1 execution
    for _ in range(2):
        sink.write(batch)
    assert dump(database) == before


def test_duplicates_within_one_flush_land_once(sink: PostgresSink, database: str) -> None:
    sid = uuid.uuid4()
    ev = event(uuid.uuid4(), sid)
    result = sink.write(items("sessions", [session(sid)]) + items("events", [ev, ev, ev]))
    assert result.accepted["events"] == 3 and not result.rejected
    assert len(dump(database)["events"]) == 1


@pytest.mark.parametrize("parents", ["present", "missing"])
def test_a_data_error_isolates_the_bad_records_and_writes_the_rest(
    sink: PostgresSink, database: str, parents: str
) -> None:
    # A rule the contract does not know, so PostgreSQL is the one refusing (SQLSTATE 23514).
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')")
    sid = uuid.uuid4()
    evs = [
        event(uuid.uuid4(), sid, event_type="poison" if i in (3, 50, 99) else "ok")
        for i in range(100)
    ]
    # With the session missing, the halves take the path that infers it first.
    sessions = items("sessions", [session(sid)]) if parents == "present" else []
    result = sink.write(sessions + items("events", evs))
    assert sorted(r.item.source.offset for r in result.rejected) == [3, 50, 99]
    assert all(r.reason.startswith("23514:") for r in result.rejected)
    assert result.accepted == {"events": 97, **({"sessions": 1} if sessions else {})}
    state = dump(database)
    assert len(state["events"]) == 97 and {r[1] for r in state["events"]} == {"ok"}
    assert state["inferred"] == ([] if sessions else [("sessions", sid)])


def test_a_lost_connection_is_transient_and_the_next_write_reconnects(
    sink: PostgresSink, database: str
) -> None:
    sid = uuid.uuid4()
    sink.write(items("sessions", [session(sid)]))
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'agentstream-worker' AND datname = current_database()"
        )
    batch = items("events", [event(uuid.uuid4(), sid)])
    with pytest.raises(TransientSinkError):
        sink.write(batch)
    sink.write(batch)
    assert len(dump(database)["events"]) == 1


def test_a_missing_schema_is_terminal_and_says_to_migrate(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DROP TABLE documents")
    with pytest.raises(TerminalSinkError, match="agentstream migrate"):
        PostgresSink(database).connect()
    missing_db = make_conninfo(database, dbname=f"as_missing_{uuid.uuid4().hex[:8]}")
    # A refused connection carries no SQLSTATE (libpq reports none before the session
    # exists), so it is retried at run time; the worker refuses to start on it instead.
    with pytest.raises(TransientSinkError, match="does not exist"):
        PostgresSink(missing_db).connect()


def test_rows_encoded_ahead_land_as_the_sink_would_encode_them(
    sink: PostgresSink, database: str
) -> None:
    # The worker encodes rows while decoding (SinkItem.row); other callers leave it to the
    # sink. Both must store the same values: one session each way, same fields.
    sink.connect()
    plain, ahead = uuid.uuid4(), uuid.uuid4()
    meta = {"plan": "pro", "nested": [1, 2.5, None, {"ü": "✓"}]}
    records = {sid: session(sid, user="u", metadata=meta) for sid in (plain, ahead)}
    pre = items("sessions", [records[ahead]])
    pre[0].row = sink.encoder("sessions")(records[ahead])
    result = sink.write(items("sessions", [records[plain]]) + pre)
    assert result.accepted == {"sessions": 2} and not result.rejected
    stored = {row[0]: row[1:] for row in dump(database)["sessions"]}
    assert stored[plain] == stored[ahead] == ("u", at(0), at(0), meta)


def test_a_value_psycopg_cannot_encode_is_rejected_with_the_reason(
    sink: PostgresSink, database: str
) -> None:
    # Validation keeps such values out; a record built without it (model_construct) is the
    # only way in, and it must become a dead letter, not a crash of the flush.
    sid = uuid.uuid4()
    good = event(uuid.uuid4(), sid)
    bad = good.model_copy(update={"id": uuid.uuid4(), "timestamp_ms": 2**70})
    result = sink.write(items("sessions", [session(sid)]) + items("events", [good, bad], 10))
    assert [(r.item.record.id, r.item.source.offset) for r in result.rejected] == [(bad.id, 11)]
    assert result.rejected[0].reason.startswith("cannot be encoded for PostgreSQL")
    assert [r[0] for r in dump(database)["events"]] == [good.id]


def test_columns_changed_under_a_running_sink_stop_it_at_the_reconnect(database: str) -> None:
    sink = PostgresSink(database)
    sink.connect()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE events ALTER COLUMN user_id TYPE text")
    sink.close()
    with pytest.raises(TerminalSinkError, match="restart the worker"):
        sink.connect()


def paused_path(sink: PostgresSink, entity: str) -> str | None:
    """The path the sink's next flushes of ``entity`` take while its fast path is paused."""
    paused = sink._paused.get(entity)
    return paused[0].value if paused else None


def test_children_before_parents_are_copied_after_their_parents_first_write_wins(
    sink: PostgresSink, database: str
) -> None:
    """Children whose parents are missing: the parents are inferred, then the rows are
    COPYed (not upserted); a replay or a duplicate among them still keeps the first write,
    and each interaction is in the change log exactly once."""
    sid, later_sid = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(5)]
    first = [
        llm(iid, sid, prompt=f"first {i}", prompt_tokens=100, cache_read_tokens=i)
        for i, iid in enumerate(ids)
    ]
    # No duplicate id: the foreign-key violation sends it to "parents then copy".
    result = sink.write(items("llm_interactions", first))
    assert result.accepted == {"llm_interactions": 5} and not result.rejected
    assert paused_path(sink, "llm_interactions") == "parents then copy"
    state = dump(database)
    assert {r[0]: r[3] for r in state["llm_interactions"]} == {r.id: r.prompt for r in first}
    assert state["inferred"] == [("sessions", sid)]
    assert sorted(state["change_log"]) == sorted(("llm_interactions", r.id) for r in first)
    with psycopg.connect(database) as conn:
        usage = conn.execute("SELECT id, cache_read_tokens FROM agentstream.llm_usage").fetchall()
    assert sorted(usage) == sorted((r.id, r.cache_read_tokens) for r in first)

    # Next flush, paused on that path, with another missing parent: two replays of the first
    # flush (other contents), a duplicate id within the flush, and new interactions. The
    # COPY after the parents meets the replays: the upsert keeps every first write.
    dup, fresh = uuid.uuid4(), uuid.uuid4()
    replays = [
        llm(iid, sid, prompt="replayed", prompt_tokens=100, cache_read_tokens=99) for iid in ids[:2]
    ]
    second = [
        *replays,
        llm(dup, later_sid, prompt="dup first"),
        llm(dup, later_sid, prompt="dup second"),
        llm(fresh, later_sid, prompt="fresh"),
    ]
    result = sink.write(items("llm_interactions", second, offset=10))
    assert result.accepted == {"llm_interactions": 5} and not result.rejected
    assert paused_path(sink, "llm_interactions") == "upsert"
    state = dump(database)
    prompts = {r[0]: r[3] for r in state["llm_interactions"]}
    assert prompts == {**{r.id: r.prompt for r in first}, dup: "dup first", fresh: "fresh"}
    assert sorted(state["inferred"]) == sorted([("sessions", sid), ("sessions", later_sid)])
    logged = [i for _, i in state["change_log"]]
    assert sorted(logged) == sorted([*ids, dup, fresh])  # each once
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT id, cache_read_tokens FROM agentstream.llm_usage")
        details: dict[uuid.UUID, int | None] = dict(stored.fetchall())
    assert details == {r.id: r.cache_read_tokens for r in first}  # the replays' 99 lost

    # The real session replaces the inferred one; replaying everything changes nothing.
    sink.write(items("sessions", [session(sid, user="real")]))
    before = dump(database)
    sink.write(items("llm_interactions", first + second))
    assert dump(database) == before


def test_an_unexpected_error_mid_flush_leaves_nothing_of_it(
    sink: PostgresSink, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink opens each flush's transaction itself: an error that is not PostgreSQL's
    (a bug, an interrupt) after the first table was written must not leave that table's
    rows in an open transaction for the next flush to commit."""
    from agentstream.sinks.postgres.copy import copy_payload as real

    sid = uuid.uuid4()
    batch = items("sessions", [session(sid)]) + items("events", [event(uuid.uuid4(), sid)])
    calls = []

    def second_copy_fails(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("boom")
        real(*args)

    monkeypatch.setattr("agentstream.sinks.postgres.writer.copy_payload", second_copy_fails)
    with pytest.raises(RuntimeError):
        sink.write(batch)
    monkeypatch.undo()
    assert dump(database)["sessions"] == []
    other = uuid.uuid4()
    sink.write(items("sessions", [session(other)]))
    assert [r[0] for r in dump(database)["sessions"]] == [other]
    sink.write(batch)
    state = dump(database)
    assert len(state["sessions"]) == 2 and len(state["events"]) == 1
