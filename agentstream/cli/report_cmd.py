"""``agentstream report``: cost and latency by a dimension over a window (analytics/report.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentstream.cli.main import CommandError

BY = ("model", "agent", "agent_type", "user", "session", "hour", "day")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="cost/latency report: table, CSV, JSON, HTML with charts",
        description="Report LLM calls, errors, tokens, cost and latency percentiles (and agent "
        "executions) from the rollups, grouped by one dimension. The window is widened to "
        "whole hours (whole days for --by day). The rollup is brought up to date first "
        "unless --no-rollup. Times: YYYY-MM-DD, ISO timestamps (no zone: UTC), now, 24h/7d ago.",
    )
    p.add_argument("--since", default="7d", help="window start (default 7d ago)")
    p.add_argument("--until", default="now", help="window end, exclusive (default now)")
    p.add_argument("--by", choices=BY, default="model", help="grouping (default model)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--html", type=Path, metavar="PATH", help="also write the HTML report here")
    p.add_argument("--no-rollup", action="store_true", help="report the rollups as they are")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg

    from agentstream.analytics.prices import PriceError
    from agentstream.analytics.report import build_report, render_csv, render_json, render_table
    from agentstream.analytics.when import parse_when
    from agentstream.contract.settings import get_settings

    settings = get_settings()
    try:
        since, until = parse_when(args.since), parse_when(args.until)
        report = build_report(
            settings.database_conninfo(),
            since,
            until,
            args.by,
            refresh=not args.no_rollup,
            prices_file=settings.prices_file,
            with_series=args.html is not None,
        )
    except (ValueError, PriceError) as exc:
        raise CommandError(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {settings.database_url_redacted()}: {exc}".strip()
        ) from None
    render = {"table": render_table, "csv": render_csv, "json": render_json}[args.format]
    sys.stdout.write(render(report).rstrip("\n") + "\n")
    if args.html is not None:
        from agentstream.analytics.report_html import render_html

        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(report), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
