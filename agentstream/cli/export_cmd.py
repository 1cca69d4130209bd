"""``agentstream export``: tables to Hive-partitioned, zstd Parquet (analytics/export.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agentstream.cli.main import CommandError

TABLES = (
    "sessions",
    "events",
    "agents",
    "agent_executions",
    "llm_interactions",
    "documents",
    "llm_rollup",
    "exec_rollup",
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export a table to Parquet (partitioned by date, zstd)",
        description="Write TABLE's rows whose partition date is in [--since, --until) to "
        "OUT/TABLE/date=YYYY-MM-DD/part-0.parquet. A re-run rewrites exactly the partitions "
        "of its range. Without --since, starts at the last date the previous export wrote "
        "(incremental); --full exports everything. TABLE 'all' exports every table.",
    )
    p.add_argument(
        "table", choices=(*TABLES, "all"), metavar="TABLE", help=f"one of: {', '.join(TABLES)}, all"
    )
    p.add_argument("--since", help="first date (UTC), inclusive")
    p.add_argument("--until", help="last date (UTC), exclusive")
    p.add_argument("--out", type=Path, help="output folder (default AGENTSTREAM_OUTPUT_DIR)")
    p.add_argument("--full", action="store_true", help="ignore the saved state: export all")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print results as JSON lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentstream.analytics.export import ExportError, export_table
    from agentstream.analytics.when import parse_date
    from agentstream.contract.settings import get_settings

    settings = get_settings()
    out = args.out or settings.output_dir
    try:
        since = parse_date(args.since) if args.since else None
        until = parse_date(args.until) if args.until else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    tables = TABLES if args.table == "all" else (args.table,)
    for table in tables:
        try:
            result = export_table(
                settings.database_conninfo(),
                table,
                out,
                since=since,
                until=until,
                full=args.full,
                progress=not args.no_progress and sys.stderr.isatty(),
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:  # the driver's errors carry no common base class
            if "connect" in str(exc).lower():
                raise CommandError(
                    f"cannot reach PostgreSQL at {settings.database_url_redacted()}: {exc}"
                ) from None
            raise
        if args.json:
            print(
                json.dumps(
                    {
                        "table": table,
                        "rows": result.rows,
                        "partitions": result.partitions,
                        "removed": result.removed,
                        "seconds": round(result.seconds, 3),
                    }
                )
            )
        else:
            print(
                f"{table}: {result.rows} rows in {len(result.partitions)} partition(s) "
                f"under {out / table} ({result.seconds:.1f} s)"
                + (f"; removed {len(result.removed)} empty" if result.removed else "")
            )
    return 0
