"""``agentstream worker``: run the stream processors until SIGTERM/SIGINT, then drain and stop."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from agentstream.cli.argtypes import port, positive_float, positive_int
from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="consume the entity topics and write them into PostgreSQL",
        description="Consume the six entity topics, validate every record, dead-letter the "
        "invalid ones and batch-write the rest into PostgreSQL. Several workers with the "
        "same AGENTSTREAM_WORKER_GROUP share the partitions. SIGTERM/SIGINT finish the "
        "batch in flight, commit, and exit 0.",
    )
    p.add_argument(
        "--batch-records", type=positive_int, help="records per flush (worker_batch_records)"
    )
    p.add_argument(
        "--batch-seconds",
        type=positive_float,
        help="longest wait before a flush (worker_batch_seconds)",
    )
    p.add_argument("--group", help="consumer group (worker_group)")
    p.add_argument("--metrics-port", type=port, help="/metrics and /healthz port, 0 = off")
    p.set_defaults(func=run)


def _stop_before_start(signum: int, frame: Any) -> None:
    sys.stderr.write(
        f"worker: {signal.Signals(signum).name} during start-up; nothing consumed yet, exiting\n"
    )
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    # Until the worker's own handlers take over (streams/signals.py: finish the batch, commit,
    # exit 0), a stop signal finds nothing consumed: exit 0 at once rather than die of it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_before_start)

    from agentstream.contract.settings import get_settings
    from agentstream.streams.runner import StartupError, start_worker

    overrides = {
        "worker_batch_records": args.batch_records,
        "worker_batch_seconds": args.batch_seconds,
        "worker_group": args.group,
        "worker_metrics_port": args.metrics_port,
    }
    settings = get_settings().model_copy(
        update={k: v for k, v in overrides.items() if v is not None}
    )
    try:
        return start_worker(settings, loglevel="debug" if args.verbose else "info")
    except StartupError as exc:
        raise CommandError(str(exc)) from None
