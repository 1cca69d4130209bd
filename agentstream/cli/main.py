"""Entry point of the ``agentstream`` command: builds the parser from one module per command.

Each command module exposes ``register(subparsers)``, which adds its sub-parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Command
modules import their layer lazily, inside ``run``, so ``agentstream --help`` stays fast and
a command's heavy dependencies load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agentstream import __version__

__all__ = ["CommandError", "main", "missing_extra"]

# Order is the order shown in --help.
COMMANDS = (
    "migrate",
    "worker",
    "otlp",
    "produce",
    "rollup",
    "report",
    "export",
    "session",
    "dlq",
    "status",
    "schema",
    "alerts",
)


# The modules each extra brings (pyproject.toml), so that a command run without its extra
# says what to install instead of a bare ModuleNotFoundError.
_MODULES_OF_EXTRA = {
    "worker": ("faust", "mode", "psycopg", "psycopg_pool", "prometheus_client"),
    "analytics": (
        "psycopg",
        "pandas",
        "pyarrow",
        "numpy",
        "tqdm",
        "matplotlib",
        "duckdb",
        "adbc_driver_postgresql",
        "adbc_driver_manager",
    ),
    "otlp": ("aiohttp", "opentelemetry", "google", "prometheus_client", "grpc"),
}
# Both extras bring psycopg: the analytics commands name theirs, the others the worker's.
_EXTRA_OF_COMMAND = dict.fromkeys(("rollup", "report", "export", "session"), "analytics")
_EXTRA_OF_COMMAND["otlp"] = "otlp"  # it needs prometheus_client too, as the worker does


def missing_extra(exc: ModuleNotFoundError, command: str | None = None) -> str | None:
    """The extra that would install the module ``exc`` did not find, if it is one of ours."""
    root = (exc.name or "").partition(".")[0]
    preferred = _EXTRA_OF_COMMAND.get(command or "", "worker")
    for extra in (preferred, *_MODULES_OF_EXTRA):
        if root in _MODULES_OF_EXTRA[extra]:
            return extra
    return None


class CommandError(Exception):
    """A failure the user can fix; printed as ``agentstream: error: ...`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentstream",
        description="Agent telemetry pipeline: Kafka -> validation -> PostgreSQL -> analytics. "
        "Settings come from AGENTSTREAM_* environment variables (and .env).",
    )
    parser.add_argument("--version", action="version", version=f"agentstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"agentstream.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"agentstream.cli.{name}_cmd":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose and args.command != "worker":
        # Kafka clients narrate every connection and subscription at INFO: noise around a
        # command's own output. The worker keeps them (they are its operational log).
        for name in ("aiokafka", "kafka", "faust", "mode"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Its warnings are errors it retries (a just-created partition whose leader is still
        # taking over, a broker restarting); what cannot be delivered the SDK raises.
        logging.getLogger("aiokafka.producer.sender").setLevel(logging.ERROR)
    try:
        code: int = args.func(args)
    except CommandError as exc:
        print(f"agentstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc, args.command)
        if extra is None:
            raise
        print(
            f"agentstream {args.command}: error: this command needs the {extra!r} extra "
            f"({exc.name} is not installed): pip install 'agentstream[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `agentstream schema | head`
        sys.stdout = None
        return 0
    return code
