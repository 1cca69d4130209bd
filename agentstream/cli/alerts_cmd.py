"""``agentstream alerts``: check a rules file, run the alerts app, list fired alerts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agentstream.cli.argtypes import port
from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "alerts",
        help="streaming budgets and alerts (check rules, run, list)",
        description="Watch spend, latency and failures as records arrive, by the rules of a "
        "TOML file (docs/alerts.md).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a rules file and say what is wrong where")
    check.add_argument("file", type=Path)
    run_p = actions.add_parser("run", help="run the alerts app (its own consumer group)")
    run_p.add_argument(
        "--rules", type=Path, help="the rules file (default: AGENTSTREAM_ALERT_RULES)"
    )
    run_p.add_argument(
        "--metrics-port", type=port, default=0, help="serve /metrics on this port (0: off)"
    )
    ls = actions.add_parser("list", help="the alerts in the database, oldest first")
    ls.add_argument("--since", help="only alerts fired at or after this time (ISO 8601, or 1h, 1d)")
    ls.add_argument("--follow", action="store_true", help="keep printing new alerts")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def _rules(path: Path) -> list[Any]:
    from agentstream.alerts.rules import RulesInvalid, load_rules

    try:
        return load_rules(path)
    except OSError as exc:
        raise CommandError(f"cannot read rules file {path}: {exc.strerror}") from None
    except RulesInvalid as exc:
        raise CommandError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        from agentstream.alerts.rules import PICO_PER_USD

        for rule in _rules(args.file):
            window = f"{rule.window_s}s" + (
                f" every {rule.hop_s}s" if rule.hop_s != rule.window_s else ""
            )
            unit = PICO_PER_USD if rule.metric == "cost_usd" else 1
            levels = ", ".join(f"{(level.threshold / unit).normalize():f}" for level in rule.levels)
            print(f"{rule.name}: {rule.metric} by {rule.group_by} over {window}; levels {levels}")
        return 0
    from agentstream.contract.settings import get_settings

    settings = get_settings()
    if args.action == "run":
        path = args.rules or settings.alert_rules
        if path is None:
            raise CommandError("no rules file: pass --rules FILE or set AGENTSTREAM_ALERT_RULES")
        from agentstream.alerts.runner import AlertsStartupError, start_alerts

        rules = _rules(path)
        try:
            return start_alerts(settings, rules, metrics_port=args.metrics_port)
        except AlertsStartupError as exc:
            raise CommandError(str(exc)) from None
    from agentstream.alerts.listing import ListingError, list_alerts

    try:
        return list_alerts(settings, since=args.since, follow=args.follow, as_json=args.json)
    except ListingError as exc:
        raise CommandError(str(exc)) from None
