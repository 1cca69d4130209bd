"""Rollups against hand-computed costs, numpy's percentiles, and a full rebuild."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from agentstream.analytics.rollup import run_rollup
from agentstream.analytics.rollup.run import STALE_BUCKETS_REASON
from tests.analytics_data import add_agent, add_call, add_execution, add_session, log_change

pytestmark = pytest.mark.integration

T0 = datetime(2024, 10, 1, 23, 0, tzinfo=UTC)  # gpt-4o's price changes at 2024-10-02 00:00


def rollup_rows(conninfo: str, **where: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    cond = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(conninfo) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        cur.execute(f"SELECT * FROM analytics.llm_rollup WHERE {cond}", where)
        return {(r["granularity"], r["dimension"], r["bucket"], r["key"]): r for r in cur}


def snapshot(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(conninfo) as conn:
        return {
            t: conn.execute(f"SELECT * FROM analytics.{t} ORDER BY 1, 2, 3, 4").fetchall()
            for t in ("llm_rollup", "exec_rollup")
        }


def logged_seqs(conninfo: str) -> list[int]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT seq FROM agentstream.change_log ORDER BY seq").fetchall()
    return [row[0] for row in rows]


def test_costs_to_the_cent_across_models_and_a_price_change(database: str) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "alice", T0)
        a = add_agent(conn, s, "planner", T0)
        # gpt-4o before the change: 1000 x $5/M + 500 x $15/M = 0.0125
        add_call(
            conn,
            s,
            a,
            "gpt-4o",
            T0 + timedelta(minutes=30),
            prompt_tokens=1000,
            response_tokens=500,
        )
        # gpt-4o after: 2000 x $2.50/M + 1000 x $10/M = 0.015
        add_call(
            conn,
            s,
            a,
            "gpt-4o",
            T0 + timedelta(minutes=90),
            prompt_tokens=2000,
            response_tokens=1000,
        )
        # a dated snapshot name, priced by the pattern gpt-4o-mini-*:
        # 100000 x $0.15/M + 20000 x $0.60/M = 0.027
        add_call(
            conn,
            s,
            None,
            "gpt-4o-mini-2024-07-18",
            T0 + timedelta(minutes=100),
            prompt_tokens=100_000,
            response_tokens=20_000,
        )
        # claude-3-haiku-*: 40000 x $0.25/M + 8000 x $1.25/M = 0.02
        add_call(
            conn,
            s,
            a,
            "claude-3-haiku-20240307",
            T0 + timedelta(minutes=110),
            prompt_tokens=40_000,
            response_tokens=8_000,
            success=False,
        )
        # not in the price table: unpriced, never $0
        add_call(
            conn,
            s,
            a,
            "in-house-llm-7b",
            T0 + timedelta(minutes=115),
            prompt_tokens=10_000,
            response_tokens=10_000,
        )
    result = run_rollup(database)
    assert result.unpriced_models == ["in-house-llm-7b"]

    by_model = {
        key[3]: row
        for key, row in rollup_rows(database, granularity="day", dimension="model").items()
    }
    day2 = datetime(2024, 10, 2, tzinfo=UTC)
    gpt4o_day2 = rollup_rows(database, granularity="day", dimension="model", key="gpt-4o")
    assert by_model["gpt-4o"]["cost"] in (Decimal("0.0125"), Decimal("0.015"))
    assert {r["bucket"]: r["cost"] for r in gpt4o_day2.values()} == {
        day2 - timedelta(days=1): Decimal("0.0125"),
        day2: Decimal("0.015"),
    }
    day2_models = {
        k[3]: r
        for k, r in rollup_rows(database, granularity="day", dimension="model").items()
        if k[2] == day2
    }
    assert day2_models["gpt-4o-mini-2024-07-18"]["cost"] == Decimal("0.027")
    assert day2_models["claude-3-haiku-20240307"]["cost"] == Decimal("0.02")
    assert day2_models["claude-3-haiku-20240307"]["errors"] == 1
    assert day2_models["in-house-llm-7b"]["cost"] == 0
    assert day2_models["in-house-llm-7b"]["unpriced_calls"] == 1

    totals = rollup_rows(database, granularity="day", dimension="all")
    assert sum(r["cost"] for r in totals.values()) == Decimal("0.0745")
    assert round(sum(r["cost"] for r in totals.values()), 2) == Decimal("0.07")
    assert sum(r["unpriced_calls"] for r in totals.values()) == 1
    assert sum(r["calls"] for r in totals.values()) == 5
    with psycopg.connect(database) as conn:
        unpriced = conn.execute(
            "SELECT count(*) FROM analytics.llm_facts WHERE cost_pico IS NULL"
        ).fetchone()
    assert unpriced == (1,)


def test_user_price_file_prices_a_model_and_recosts(database: str, tmp_path: Path) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "bob", T0)
        add_call(
            conn, s, None, "in-house-llm-7b", T0, prompt_tokens=1_000_000, response_tokens=500_000
        )
        # Priced by the shipped table before and after, in another hour: left alone.
        add_call(conn, s, None, "gpt-4o", T0 + timedelta(hours=5))
    first = run_rollup(database)
    assert first.unpriced_models == ["in-house-llm-7b"]
    before = rollup_rows(database, granularity="hour", dimension="all")
    prices = tmp_path / "mine.json"

    def price_file(output: str) -> Path:
        prices.write_text(
            json.dumps(
                {
                    "checked": "2026-01-01",
                    "prices": [
                        {
                            "provider": "us",
                            "model": "in-house-llm-*",
                            "pattern": True,
                            "effective_from": "2024-01-01",
                            "input": "0.10",
                            "output": output,
                        }
                    ],
                }
            )
        )
        return prices

    # Only the facts of the model whose price periods changed are re-costed, and only the
    # hours where a cost changed are recomputed: no rebuild of every fact.
    second = run_rollup(database, prices_file=price_file("0.30"))
    assert not second.full and second.reason == "prices changed: 1 model(s) re-costed"
    assert (second.hours, second.days) == (1, 1)
    assert second.unpriced_models == []
    after = rollup_rows(database, granularity="hour", dimension="all")
    row = after[("hour", "all", T0, "")]
    assert row["cost"] == Decimal("0.25")  # 1M x $0.10/M + 0.5M x $0.30/M
    assert row["unpriced_calls"] == 0
    later = ("hour", "all", T0 + timedelta(hours=5), "")
    assert after[later] == before[later]
    recosted = snapshot(database)
    run_rollup(database, full=True, prices_file=prices)
    assert snapshot(database) == recosted

    # A change of that price: the same again; back to the shipped table: unpriced again.
    third = run_rollup(database, prices_file=price_file("0.50"))
    assert (third.full, third.hours) == (False, 1)
    assert rollup_rows(database, granularity="hour", dimension="all")[("hour", "all", T0, "")][
        "cost"
    ] == Decimal("0.35")
    fourth = run_rollup(database)
    assert fourth.reason == "prices changed: 1 model(s) re-costed"
    assert fourth.unpriced_models == ["in-house-llm-7b"]
    assert rollup_rows(database, granularity="hour", dimension="all") == before


def test_percentiles_equal_numpy(database: str) -> None:
    rng = random.Random(7)
    latencies = [rng.randint(20, 5000) for _ in range(137)]
    with psycopg.connect(database) as conn:
        s = add_session(conn, "carol", T0)
        for i, ms in enumerate(latencies):
            add_call(conn, s, None, "gpt-4o", T0 + timedelta(seconds=i), latency_ms=ms)
    run_rollup(database)
    (row,) = rollup_rows(database, granularity="hour", dimension="model", key="gpt-4o").values()
    expected = np.percentile(latencies, [50, 90, 95, 99])  # linear, numpy's default
    got = [row["latency_p50"], row["latency_p90"], row["latency_p95"], row["latency_p99"]]
    assert got == pytest.approx(list(expected), rel=1e-12, abs=0)
    assert row["latency_max"] == max(latencies)
    assert row["latency_mean"] == pytest.approx(np.mean(latencies), rel=1e-12)


def test_execution_rollup(database: str) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "dan", T0)
        a = add_agent(conn, s, "coder", T0)
        durations = [100, 250, 400, 1000]
        for d in durations:
            add_execution(conn, s, a, T0, duration_ms=d)
        add_execution(conn, s, a, T0, status="failed", duration_ms=50)
        add_execution(conn, s, a, T0, status="running", duration_ms=None)
    run_rollup(database)
    with psycopg.connect(database) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        row = cur.execute(
            "SELECT * FROM analytics.exec_rollup WHERE granularity = 'hour' "
            "AND dimension = 'agent_type' AND key = 'coder'"
        ).fetchone()
    assert row is not None
    assert (row["executions"], row["finished"], row["succeeded"], row["failed"]) == (6, 5, 4, 1)
    assert row["success_rate"] == pytest.approx(0.8)
    done = [*durations, 50]
    assert row["duration_p90"] == pytest.approx(np.percentile(done, 90))
    assert row["duration_max"] == 1000


def test_agent_and_session_keys_are_their_ids_text(database: str) -> None:
    # Ids arrive from the reader as Arrow uuids: keyed by their bytes, the report would show
    # (and look up) escaped binary instead of the ids.
    with psycopg.connect(database) as conn:
        s = add_session(conn, "erin", T0)
        a = add_agent(conn, s, "coder", T0)
        add_call(conn, s, a, "gpt-4o", T0, latency_ms=100)
        add_execution(conn, s, a, T0, duration_ms=100)
    for full in (False, True):  # the first run is a full rebuild; then an incremental one
        if not full:
            with psycopg.connect(database) as conn:
                add_call(conn, s, a, "gpt-4o", T0 + timedelta(minutes=1), latency_ms=200)
        run_rollup(database, full=full)
        with psycopg.connect(database) as conn:
            keys = {
                table: conn.execute(
                    f"SELECT DISTINCT dimension, key FROM analytics.{table}"
                    " WHERE dimension IN ('agent', 'session') ORDER BY 1"
                ).fetchall()
                for table in ("llm_rollup", "exec_rollup")
            }
        expected = [("agent", str(a)), ("session", str(s))]
        assert keys == {"llm_rollup": expected, "exec_rollup": expected}


def test_incremental_after_new_data_equals_full_rebuild(database: str) -> None:
    rng = random.Random(11)
    models = ["gpt-4o", "claude-3-haiku-20240307", "in-house-llm-7b"]
    with psycopg.connect(database) as conn:
        sessions = [add_session(conn, f"user-{i % 3}", T0) for i in range(6)]
        agents = [
            add_agent(conn, s, ["planner", "coder"][i % 2], T0) for i, s in enumerate(sessions)
        ]
        for i in range(120):
            k = rng.randrange(6)
            add_call(
                conn,
                sessions[k],
                agents[k],
                rng.choice(models),
                T0 + timedelta(minutes=rng.randrange(0, 48 * 60)),
                latency_ms=rng.randint(10, 3000),
                success=i % 9 != 0,
            )
        running = add_execution(
            conn, sessions[0], agents[0], T0, status="running", duration_ms=None
        )
    first = run_rollup(database)
    assert first.full  # the first run builds everything

    with psycopg.connect(database) as conn:
        for i in range(40):  # new rows, some in old buckets, some in new ones
            k = rng.randrange(6)
            add_call(
                conn,
                sessions[k],
                agents[k],
                rng.choice(models),
                T0 + timedelta(minutes=rng.randrange(0, 72 * 60)),
                latency_ms=rng.randint(10, 3000),
                success=i % 5 != 0,
            )
        conn.execute(
            "UPDATE agent_executions SET status = 'completed', "
            "completed_at = started_at + interval '2 seconds' WHERE id = %s",
            (running,),
        )
        log_change(conn, "agent_executions", running)
    second = run_rollup(database)
    assert not second.full and second.changes == 41
    assert second.hours > 0
    incremental = snapshot(database)

    run_rollup(database, full=True)
    assert snapshot(database) == incremental
    with psycopg.connect(database) as conn:
        calls = conn.execute(
            "SELECT sum(calls) FROM analytics.llm_rollup "
            "WHERE granularity = 'day' AND dimension = 'all'"
        ).fetchone()
    assert calls == (160,)


def test_parents_rewritten_unchanged_touch_nothing_and_changed_ones_refold(
    database: str,
) -> None:
    # Facts copy a session's user and an agent's type. The sink logs every session and agent
    # it writes; nearly always the user and the type are the same as before.
    with psycopg.connect(database) as conn:
        s = add_session(conn, "ivy", T0)
        other = add_session(conn, "jon", T0)
        a = add_agent(conn, s, "planner", T0)
        add_call(conn, s, a, "gpt-4o", T0)
        add_call(conn, other, None, "gpt-4o", T0 + timedelta(days=1))
        add_execution(conn, s, a, T0, status="completed", duration_ms=1000)
    run_rollup(database)
    before = snapshot(database)

    def rewrite(session_set: str, agent_set: str) -> None:
        # As the sink does: the rows updated and logged, in one transaction.
        with psycopg.connect(database) as conn:
            conn.execute(f"UPDATE sessions SET {session_set} WHERE id = %s", (s,))
            conn.execute(f"UPDATE agents SET {agent_set} WHERE id = %s", (a,))
            log_change(conn, "sessions", s)
            log_change(conn, "agents", a)

    rewrite("updated_at = now()", "status = 'done', updated_at = now()")
    same = run_rollup(database)
    assert (same.changes, same.hours, same.days) == (2, 0, 0)  # nothing to recompute
    assert snapshot(database) == before

    rewrite("user_id = 'kim'", "type = 'coder'")
    changed = run_rollup(database)
    assert (changed.hours, changed.days) == (2, 2)  # T0's hour, llm and executions; not jon's
    users = rollup_rows(database, granularity="day", dimension="user")
    assert sorted(k[3] for k in users) == ["jon", "kim"]
    with psycopg.connect(database) as conn:
        execs = conn.execute(
            "SELECT key FROM analytics.exec_rollup WHERE granularity = 'day'"
            " AND dimension IN ('user', 'agent_type') ORDER BY 1"
        ).fetchall()
    assert execs == [("coder",), ("kim",)]
    incremental = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == incremental


def test_a_day_touched_only_by_a_changed_parent_is_rebuilt_whole_beside_new_calls(
    database: str,
) -> None:
    # A run reads the days of its new calls early, while it folds them in; a day that only
    # a changed session touches is read after, without the hour the change made dirty.
    day_b = T0 + timedelta(days=2, hours=-3)
    with psycopg.connect(database) as conn:
        moved = add_session(conn, "ann", T0)
        stays = add_session(conn, "bob", T0)
        for i in range(6):
            add_call(conn, moved, None, "gpt-4o", T0 + timedelta(minutes=i), latency_ms=100 + i)
            add_call(conn, stays, None, "gpt-4o", T0 - timedelta(hours=5), latency_ms=900 + i)
            add_call(conn, stays, None, "gpt-4o", day_b, latency_ms=50 * i)
    run_rollup(database)
    with psycopg.connect(database) as conn:
        add_call(conn, stays, None, "gpt-4o", day_b + timedelta(hours=1), latency_ms=7)
        conn.execute("UPDATE sessions SET user_id = 'cat' WHERE id = %s", (moved,))
        log_change(conn, "sessions", moved)
    changed = run_rollup(database)
    assert (changed.changes, changed.hours, changed.days) == (2, 2, 2)
    days = rollup_rows(database, granularity="day", dimension="all")
    assert sorted(r["calls"] for r in days.values()) == [7, 12]
    incremental = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == incremental


def test_new_calls_of_old_parents_and_a_day_summed_from_its_hour_rows(database: str) -> None:
    # An incremental run looks up only the agents and sessions of its new calls, which need
    # not be in its change log; a day row's sums are the clean hours' rows as stored plus
    # the dirty hours' just grouped, money to the picodollar.
    with psycopg.connect(database) as conn:
        s = add_session(conn, "dora", T0 - timedelta(hours=20))
        a = add_agent(conn, s, "critic", T0 - timedelta(hours=20))
        other = add_session(conn, "eve", T0 - timedelta(hours=20))
        for i in range(5):  # clean hours of the day, costed in odd picodollars
            add_call(conn, s, a, "gpt-4o", T0 - timedelta(hours=3 + i), prompt_tokens=1001 + i * 7)
    run_rollup(database)
    with psycopg.connect(database) as conn:
        add_call(conn, s, a, "gpt-4o", T0 + timedelta(minutes=10), prompt_tokens=333)
        add_call(conn, other, None, "gpt-4o", T0 + timedelta(minutes=20), prompt_tokens=77)
    changed = run_rollup(database)
    assert (changed.changes, changed.hours, changed.days) == (2, 1, 1)
    with psycopg.connect(database) as conn:
        facts = conn.execute(
            "SELECT prompt_tokens, agent_type, user_id FROM analytics.llm_facts"
            " WHERE hour = %s ORDER BY 1",
            (T0,),
        ).fetchall()
        assert facts == [(77, None, "eve"), (333, "critic", "dora")]
        sums = conn.execute(
            "SELECT dimension, key, sum(calls), sum(prompt_tokens), sum(cost), sum(input_cost)"
            " FROM analytics.llm_rollup WHERE granularity = 'hour'"
            " AND bucket >= %s AND bucket < %s GROUP BY 1, 2 ORDER BY 1, 2",
            (T0 - timedelta(hours=23), T0 + timedelta(hours=1)),
        ).fetchall()
        days = conn.execute(
            "SELECT dimension, key, calls, prompt_tokens, cost, input_cost"
            " FROM analytics.llm_rollup WHERE granularity = 'day' AND bucket = %s"
            " ORDER BY 1, 2",
            (T0 - timedelta(hours=23),),
        ).fetchall()
    assert days == sums
    assert ("user", "dora", 6, 333 + sum(1001 + i * 7 for i in range(5))) in [d[:4] for d in days]
    incremental = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == incremental


def test_rerun_without_changes_changes_nothing(database: str) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "erin", T0)
        add_call(conn, s, None, "gpt-4o", T0)
    run_rollup(database)
    before = snapshot(database)
    again = run_rollup(database)
    assert (again.full, again.changes) == (False, 0)
    assert snapshot(database) == before


def test_watermark_waits_for_a_young_gap_in_the_change_log(database: str) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "gap", T0)
        add_call(conn, s, None, "gpt-4o", T0)
    run_rollup(database)  # the first run: watermark = 1
    with psycopg.connect(database) as conn:
        log_change(conn, "llm_interactions", s)  # a sink transaction takes seq 2...
        conn.rollback()  # ...and rolls back
        later = add_call(conn, s, None, "gpt-4o", T0 + timedelta(minutes=1))  # seq 3
    young = run_rollup(database)
    # The hole at seq 2 could be a transaction still in flight: the row after it is folded
    # in now, but the watermark stays before the hole, so it would be read again.
    assert (young.changes, young.watermark) == (1, 1)
    assert logged_seqs(database) == [3]  # folded lines are deleted, never one past the hole
    with psycopg.connect(database) as conn:
        conn.execute(
            "UPDATE agentstream.change_log SET logged_at = now() - interval '10 minutes' "
            "WHERE id = %s",
            (later,),
        )
    old = run_rollup(database)
    assert old.watermark == 3  # an old hole is a rollback: passed
    assert logged_seqs(database) == []
    (row,) = rollup_rows(database, granularity="hour", dimension="all").values()
    assert row["calls"] == 2


def test_a_run_that_dies_between_its_transactions_is_finished_by_the_next(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first transaction commits the facts (here: an execution restarted two days later,
    # so its fact moves to another day, and one new call); the rebuild of the buckets then
    # fails. The hours the facts left and entered stay dirty, so the next run rebuilds
    # exactly those: equal to a full rebuild.
    with psycopg.connect(database) as conn:
        s = add_session(conn, "dora", T0)
        a = add_agent(conn, s, "planner", T0)
        # Its own agent: the agent's day rows then move with it (the day it left has none).
        moved = add_execution(conn, s, add_agent(conn, s, "coder", T0), T0)
        add_execution(conn, s, a, T0 + timedelta(minutes=5))
        add_call(conn, s, a, "gpt-4o", T0, latency_ms=100)
    run_rollup(database)
    with psycopg.connect(database) as conn:
        conn.execute(
            "UPDATE agent_executions SET started_at = started_at + interval '2 days' WHERE id = %s",
            (moved,),
        )
        log_change(conn, "agent_executions", moved)
        add_call(conn, s, a, "gpt-4o", T0 + timedelta(hours=3), latency_ms=900)

    import agentstream.analytics.rollup as rollup

    def broken(self: Any, query: str, columns: Any) -> Any:
        raise OSError("connection lost while reading the facts")

    monkeypatch.setattr(rollup._CommittedReader, "__call__", broken)
    with pytest.raises(OSError):
        run_rollup(database)
    with psycopg.connect(database) as conn:
        dirty = conn.execute(
            "SELECT kind, hour - %s FROM analytics.dirty_hours ORDER BY 1, 2", (T0,)
        ).fetchall()
    # The execution's hour (left) and two days later (entered); the new call's hour.
    assert dirty == [
        ("exec", timedelta(0)),
        ("exec", timedelta(days=2)),
        ("llm", timedelta(hours=3)),
    ]
    monkeypatch.undo()

    finished = run_rollup(database)
    assert (finished.full, finished.changes, finished.hours) == (False, 0, 3)
    incremental = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == incremental
    # T0 is 23:00: its day keeps the 23:05 execution; the moved one is alone two days later,
    # in its day's rows for the session and the agent too.
    with psycopg.connect(database) as conn:
        execs = conn.execute(
            "SELECT dimension, bucket - %s, executions FROM analytics.exec_rollup"
            " WHERE granularity = 'day' AND dimension IN ('all', 'session', 'agent')"
            " ORDER BY 2, 1",
            (T0 - timedelta(hours=23),),
        ).fetchall()
    assert execs == [(d, timedelta(days=n), 1) for n in (0, 2) for d in ("agent", "all", "session")]
    days = rollup_rows(database, granularity="day", dimension="all")
    assert sorted(row["calls"] for row in days.values()) == [1, 1]


def test_a_full_rebuild_that_dies_before_its_buckets_is_finished_by_the_next_run(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full rebuild commits every fact first; its buckets are rebuilt in a second
    # transaction. If that one fails, readers keep the old rollup rows and the buckets stay
    # marked stale, so the next run, even an incremental one, rebuilds every bucket.
    with psycopg.connect(database) as conn:
        s = add_session(conn, "gus", T0)
        add_call(conn, s, None, "gpt-4o", T0, latency_ms=100)
    run_rollup(database)
    before = snapshot(database)
    with psycopg.connect(database) as conn:
        # Written by something other than the sink (no change_log line): only a full
        # rebuild of the facts finds it.
        conn.execute(
            """INSERT INTO llm_interactions (session_id, prompt, model, latency_ms, created_at)
               VALUES (%s, 'hi', 'gpt-4o', 700, %s)""",
            (s, T0 + timedelta(days=1)),
        )

    import agentstream.analytics.rollup as rollup

    def broken(self: Any, query: str, columns: Any) -> Any:
        raise OSError("connection lost while reading the facts")

    monkeypatch.setattr(rollup._CommittedReader, "__call__", broken)
    with pytest.raises(OSError):
        run_rollup(database, full=True)
    assert snapshot(database) == before  # the old rollup rows, whole
    with psycopg.connect(database) as conn:
        state = conn.execute("SELECT buckets_stale FROM analytics.rollup_state").fetchone()
        facts = conn.execute("SELECT count(*) FROM analytics.llm_facts").fetchone()
    assert (state, facts) == ((True,), (2,))
    monkeypatch.undo()

    finished = run_rollup(database)
    assert (finished.full, finished.changes, finished.hours, finished.days) == (False, 0, 2, 2)
    assert finished.reason == STALE_BUCKETS_REASON
    days = rollup_rows(database, granularity="day", dimension="all")
    assert sorted(row["calls"] for row in days.values()) == [1, 1]
    rebuilt = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == rebuilt
    with psycopg.connect(database) as conn:
        state = conn.execute("SELECT buckets_stale FROM analytics.rollup_state").fetchone()
    assert state == (False,)


@contextmanager
def migrated_before(services: Any, tmp_path: Path, version: str) -> Iterator[str]:
    """A scratch database with the migrations before ``version`` applied."""
    from agentstream.migrations import SQL_DIR, apply_migrations
    from tests.support.services import create_database, drop_database

    before = tmp_path / "sql"
    before.mkdir()
    for path in sorted(SQL_DIR.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".sql") and path.name < version:
            (before / path.name).write_bytes(path.read_bytes())
    name = create_database(services)
    try:
        conninfo = services.conninfo(name)
        apply_migrations(conninfo, before)
        yield conninfo
    finally:
        drop_database(services, name)


def test_migration_0006_keeps_stored_costs_exact(services: Any, tmp_path: Path) -> None:
    # Facts costed before 0006 (numeric dollars) become picodollars, to the last digit.
    from agentstream.migrations import apply_migrations

    with migrated_before(services, tmp_path, "0006") as conninfo:
        with psycopg.connect(conninfo) as conn:
            s = add_session(conn, "hal", T0)
            ids = [add_call(conn, s, None, "gpt-4o", T0) for _ in range(3)]
            costs = ("0.001234567891", None, "1234567.000000000001")
            for fact_id, cost in zip(ids, costs, strict=True):
                conn.execute(
                    """INSERT INTO analytics.llm_facts SELECT id, created_at, created_at, model,
                       agent_id, NULL, NULL, session_id, 1, 1, 1, true, %s
                       FROM llm_interactions WHERE id = %s""",
                    (cost, fact_id),
                )
        apply_migrations(conninfo)
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute("SELECT id, cost_pico FROM analytics.llm_facts").fetchall()
        got: dict[Any, int | None] = dict(rows)
        assert [got[i] for i in ids] == [1_234_567_891, None, 1_234_567_000_000_000_001]


def test_migration_0008_deletes_the_lines_already_folded(services: Any, tmp_path: Path) -> None:
    from agentstream.migrations import apply_migrations

    with migrated_before(services, tmp_path, "0008") as conninfo:
        with psycopg.connect(conninfo) as conn:
            s = add_session(conn, "max", T0)
            for minute in range(3):
                add_call(conn, s, None, "gpt-4o", T0 + timedelta(minutes=minute))
            # A rollup before 0008 folded seq 1-3 and kept their lines.
            conn.execute("UPDATE analytics.rollup_state SET watermark = 3")
            add_call(conn, s, None, "gpt-4o", T0)  # seq 4: not folded yet
        assert logged_seqs(conninfo) == [1, 2, 3, 4]
        apply_migrations(conninfo)
        assert logged_seqs(conninfo) == [4]


def test_migration_0009_keys_the_llm_facts_by_hour(services: Any, tmp_path: Path) -> None:
    from agentstream.migrations import apply_migrations

    with migrated_before(services, tmp_path, "0009") as conninfo:
        with psycopg.connect(conninfo) as conn:
            s = add_session(conn, "ned", T0)
            for minute in (0, 70, 200):
                add_call(conn, s, None, "gpt-4o", T0 + timedelta(minutes=minute))
            conn.execute(  # facts as a rollup before 0009 left them
                """INSERT INTO analytics.llm_facts SELECT id, created_at,
                       date_trunc('hour', created_at, 'UTC'), model, agent_id, NULL, 'ned',
                       session_id, prompt_tokens, response_tokens, latency_ms, success, NULL
                   FROM llm_interactions"""
            )
        apply_migrations(conninfo)
        with psycopg.connect(conninfo) as conn:
            key = conn.execute(
                """SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = 'analytics.llm_facts'::regclass AND i.indisprimary"""
            ).fetchone()
            assert key == (["hour", "id"],)
            assert conn.execute("SELECT to_regclass('analytics.llm_facts_hour')").fetchone() == (
                None,
            )
            assert conn.execute("SELECT count(*) FROM analytics.llm_facts").fetchone() == (3,)
        # The rollup works on the new key: a first run, new calls, then equal to a full one.
        run_rollup(conninfo)
        with psycopg.connect(conninfo) as conn:
            add_call(conn, s, None, "gpt-4o", T0 + timedelta(minutes=75))
            add_call(conn, s, None, "gpt-4o", T0 + timedelta(days=1))
        incremental = run_rollup(conninfo)
        assert (incremental.full, incremental.changes, incremental.hours) == (False, 2, 2)
        after = snapshot(conninfo)
        run_rollup(conninfo, full=True)
        assert snapshot(conninfo) == after


def test_a_model_first_seen_by_an_incremental_run_is_priced_as_by_a_full_rebuild(
    database: str,
) -> None:
    with psycopg.connect(database) as conn:
        s = add_session(conn, "fern", T0)
        add_call(conn, s, None, "gpt-4o", T0)
    run_rollup(database)
    with psycopg.connect(database) as conn:
        add_call(conn, s, None, "claude-3-haiku-20240307", T0 + timedelta(minutes=1))
        add_call(conn, s, None, "in-house-llm-7b", T0 + timedelta(minutes=2))  # no price
    incremental = run_rollup(database)
    assert not incremental.full and incremental.unpriced_models == ["in-house-llm-7b"]
    by_model = rollup_rows(database, granularity="day", dimension="model")
    costs = {key[3]: (row["cost"], row["unpriced_calls"]) for key, row in by_model.items()}
    assert costs["claude-3-haiku-20240307"][0] > 0
    assert costs["in-house-llm-7b"] == (Decimal(0), 1)
    before = snapshot(database)
    run_rollup(database, full=True)
    assert snapshot(database) == before
