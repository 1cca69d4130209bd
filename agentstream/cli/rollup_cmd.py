"""``agentstream rollup``: bring analytics facts and rollups up to date (analytics/rollup/)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "rollup",
        help="recompute cost/latency rollups (incremental)",
        description="Sync the price table (shipped prices merged with AGENTSTREAM_PRICES_FILE), "
        "fold the rows logged in agentstream.change_log since the last run into the fact "
        "tables (and delete the folded lines) and recompute only the hour and day buckets "
        "they touch. A change of the prices re-costs the facts of the models whose prices "
        "changed. The first run and --full rebuild everything from the seed tables.",
    )
    p.add_argument("--full", action="store_true", help="rebuild facts and rollups from scratch")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg

    from agentstream.analytics.prices import PriceError
    from agentstream.analytics.rollup import run_rollup
    from agentstream.contract.settings import get_settings

    settings = get_settings()
    try:
        result = run_rollup(
            settings.database_conninfo(), full=args.full, prices_file=settings.prices_file
        )
    except PriceError as exc:
        raise CommandError(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {settings.database_url_redacted()}: {exc}".strip()
        ) from None
    except psycopg.errors.UndefinedTable as exc:
        raise CommandError(f"{exc}".strip() + "\n  run `agentstream migrate` first") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CommandError(
            f"{exc}".strip() + "\n  the rollup's database role must be in the agentstream_rollup "
            "group (migrations 0004, 0008): GRANT agentstream_rollup TO <your login role>"
        ) from None
    if args.json:
        print(json.dumps(asdict(result)))
        return 0
    kind = "full rebuild" if result.full else "incremental"
    if result.reason:
        kind += f" ({result.reason})"
    # The fact counts are PostgreSQL's estimates: unknown (0) until autovacuum has analyzed.
    facts = (
        f"facts: ~{result.llm_facts:,} LLM calls, ~{result.exec_facts:,} executions; "
        if result.llm_facts or result.exec_facts
        else ""
    )
    print(
        f"rollup: {kind}: {result.changes:,} changed rows, {result.hours} hour and "
        f"{result.days} day buckets recomputed in {result.seconds:.2f} s; {facts}"
        f"watermark {result.watermark}"
    )
    if result.unpriced_models:
        print(f"warning: unpriced models (not costed): {', '.join(result.unpriced_models)}")
    return 0
