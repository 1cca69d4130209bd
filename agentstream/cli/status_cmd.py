"""``agentstream status``: consumer lag, rows per table, dead letters; optionally wait to drain."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from agentstream.cli.argtypes import positive_float
from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="consumer lag and rows per table; --wait-drained blocks until lag is zero",
        description="Show the worker group's consumer lag per topic and the rows in each "
        "table. With --wait-drained, wait (with a progress bar) until every message "
        "published so far is committed by the workers.",
    )
    p.add_argument("--wait-drained", action="store_true", help="wait until the lag is zero")
    p.add_argument(
        "--timeout", type=positive_float, default=600.0, help="give up after this many seconds"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _row_counts(conninfo: str) -> dict[str, int]:
    import psycopg

    from agentstream.contract.topics import ENTITIES

    with psycopg.connect(conninfo) as conn:
        return {
            # Table names come from the contract's fixed list, never from input.
            e: conn.execute(f"SELECT count(*) FROM {e}").fetchone()[0]  # type: ignore[index]
            for e in ENTITIES
        }


def run(args: argparse.Namespace) -> int:
    import asyncio

    import psycopg
    from aiokafka.errors import KafkaError

    from agentstream.contract.settings import get_settings
    from agentstream.streams.lag import group_lag

    settings = get_settings()
    try:
        lag = asyncio.run(group_lag(settings))
        if args.wait_drained and lag.total:
            from tqdm import tqdm

            deadline = time.monotonic() + args.timeout
            start = lag.total
            with tqdm(total=start, desc="draining", unit="msg", leave=False) as bar:
                while lag.total and time.monotonic() < deadline:
                    time.sleep(0.5)
                    lag = asyncio.run(group_lag(settings))
                    bar.n = max(start - lag.total, 0)
                    bar.refresh()
            if lag.total:
                raise CommandError(
                    f"still {lag.total} message(s) behind after {args.timeout:.0f}s: is "
                    "`agentstream worker` running?"
                )
        counts = _row_counts(settings.database_conninfo())
    except (TimeoutError, OSError, KafkaError) as exc:
        raise CommandError(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}; {settings.kafka_advice()}"
        ) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {settings.database_url_redacted()}: {exc}"
        ) from None
    if args.json:
        print(json.dumps({"lag": lag.by_topic, "published": lag.end_offsets, "rows": counts}))
        return 0
    print(f"{'topic':<40} {'messages':>10} {'lag':>8}   {'table':<18} {'rows':>10}")
    for (topic, behind), (table, rows) in zip(lag.by_topic.items(), counts.items(), strict=True):
        print(f"{topic:<40} {lag.end_offsets[topic]:>10} {behind:>8}   {table:<18} {rows:>10}")
    return 0
