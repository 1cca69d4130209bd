"""``agentstream session ID``: a session's reconstructed timeline (analytics/timeline.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "session",
        help="a session's timeline (its context)",
        description="Print a session's agents, executions, LLM calls, events and documents in "
        "time order. --json gives every field plus a chat-style 'messages' list fit to "
        "rebuild an LLM's context.",
    )
    p.add_argument("id", metavar="ID", help="the session's UUID")
    p.add_argument("--json", action="store_true", help="machine-readable, full texts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg

    from agentstream.analytics.timeline import TimelineError, load_timeline, render_text, to_json
    from agentstream.contract.settings import get_settings

    settings = get_settings()
    try:
        timeline = load_timeline(settings.database_conninfo(), args.id)
    except TimelineError as exc:
        raise CommandError(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {settings.database_url_redacted()}: {exc}".strip()
        ) from None
    if args.json:
        print(json.dumps(to_json(timeline), indent=1, default=str))
    else:
        print(render_text(timeline))
    return 0
