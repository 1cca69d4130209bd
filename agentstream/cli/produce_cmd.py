"""``agentstream produce``: synthetic, realistic agent traffic (logic: producers/loadgen.py)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from agentstream.cli.argtypes import positive_float, positive_int
from agentstream.cli.main import CommandError


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {text}Z or {text}+00:00")
    return value


# Kept literal so `--help` does not import the SDK; tests check it lists loadgen's defaults.
MODELS_HELP = (
    "comma-separated model ids (default: gpt-4o, gpt-4o-mini, claude-sonnet-4-5, "
    "claude-haiku-4-5, gemini-2.5-pro, llama-3.1-70b-selfhosted - the last one unpriced)"
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "produce",
        help="publish synthetic, realistic agent traffic (load generator)",
        description="Publish simulated agent sessions (agents, executions, LLM calls over "
        "several models, events with trace ids, documents) to the entity topics, creating "
        "them if missing. Bounded by --sessions or --duration; as fast as possible unless "
        "--rate. The same --seed (and --start) gives the same records.",
    )
    bound = p.add_mutually_exclusive_group(required=True)
    bound.add_argument("--sessions", type=positive_int, metavar="N", help="simulate N sessions")
    bound.add_argument(
        "--duration", type=positive_float, metavar="S", help="start sessions for S seconds"
    )
    p.add_argument(
        "--rate", type=positive_float, metavar="R", help="records per second (default: max)"
    )
    p.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    p.add_argument(
        "--start",
        type=_aware_datetime,
        metavar="TIME",
        help="simulated start time, ISO 8601 with offset (default: now)",
    )
    p.add_argument(
        "--models",
        metavar="M1,M2",
        help=MODELS_HELP,
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.03,
        metavar="P",
        help="share of LLM calls that fail, 0..1 (default 0.03)",
    )
    p.add_argument(
        "--concurrency", type=positive_int, default=8, help="sessions interleaved (default 8)"
    )
    p.add_argument(
        "--session-gap",
        type=positive_float,
        default=2.0,
        metavar="S",
        help="mean simulated seconds between session starts (default 2); e.g. 60 spreads "
        "1,440 sessions over a simulated day, to fill a report's hourly buckets in a minute",
    )
    progress = p.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="force the bar"
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from agentstream.contract.settings import get_settings
    from agentstream.producers.errors import AgentStreamError
    from agentstream.producers.loadgen import DEFAULT_MODELS, LoadOptions, run_load

    models = (
        [m.strip() for m in args.models.split(",") if m.strip()] if args.models else DEFAULT_MODELS
    )
    try:
        options = LoadOptions(
            sessions=args.sessions,
            duration_s=args.duration,
            rate=args.rate,
            seed=args.seed,
            models=models,
            error_rate=args.error_rate,
            concurrency=args.concurrency,
            session_gap_s=args.session_gap,
            start=args.start,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    settings = get_settings()
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = tqdm(
        total=args.sessions if args.sessions else int(args.duration),
        unit="session" if args.sessions else "s",
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def progress(sessions: int, records: int, elapsed: float) -> None:
        bar.n = sessions if args.sessions else min(int(elapsed), bar.total or 0)
        bar.set_postfix(records=records, rate=f"{records / max(elapsed, 1e-9):,.0f}/s")

    try:
        summary = asyncio.run(run_load(settings, options, progress))
    except AgentStreamError as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(
            f"produced {summary.total:,} records from {summary.sessions:,} sessions in "
            f"{summary.seconds:.2f}s ({summary.rate:,.0f} records/s), "
            f"{summary.bytes / 1e6:.1f} MB JSON in {summary.batches:,} batch messages "
            f"to {settings.kafka_bootstrap} (prefix {settings.topic_prefix!r}); seed {summary.seed}"
        )
        for entity, n in summary.records.items():
            print(f"  {entity:<17} {n:>10,}")
        if summary.topics_created:
            print(f"  created topics: {', '.join(summary.topics_created)}")
    if summary.undelivered:
        print(
            f"agentstream produce: {summary.undelivered} record(s) were NOT delivered "
            f"({len(summary.failures)} batch message(s)); first: {summary.failures[0].describe()}",
            file=sys.stderr,
        )
        return 1
    return 0
