"""``agentstream dlq``: list dead letters grouped by reason, show them, replay them after a fix."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from agentstream.cli.argtypes import positive_int
from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dlq",
        help="inspect and replay dead letters",
        description="Inspect the dead-letter topic and replay letters to their source topic "
        "once the cause is fixed. Letters that are still invalid are skipped (and listed) "
        "unless --force.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="counts by entity, kind and reason (the default view)")
    show = actions.add_parser("show", help="the selected letters, one per line, with coordinates")
    rp = actions.add_parser("replay", help="re-publish the selected letters to their source topic")
    for q in (ls, show, rp):
        q.add_argument("--entity", help="only letters of this entity (e.g. events)")
        q.add_argument("--kind", choices=["decode", "validation", "database"])
        q.add_argument("--reason", help="only letters whose reason contains this text")
        q.add_argument(
            "--at",
            action="append",
            default=[],
            metavar="PARTITION:OFFSET",
            help="only the letter at these DLQ coordinates (repeatable)",
        )
        q.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default 50)"
    )
    rp.add_argument(
        "--all",
        action="store_true",
        help="replay every letter (otherwise select some: --entity, --kind, --reason, --at)",
    )
    rp.add_argument("--dry-run", action="store_true", help="check and report, publish nothing")
    rp.add_argument("--force", action="store_true", help="replay even letters still invalid")
    ls.set_defaults(func=list_letters)
    show.set_defaults(func=show_letters)
    rp.set_defaults(func=replay_letters)


if TYPE_CHECKING:
    from agentstream.contract.settings import Settings
    from agentstream.streams.dlq_admin import LetterAt, Selection


def list_letters(args: argparse.Namespace) -> int:
    """``dlq list``: counts by entity, kind and reason."""
    from agentstream.streams.dlq_admin import group_by_reason

    letters = _read(_selection(args))
    groups = group_by_reason(letters)
    if args.json:
        rows = [{"entity": e, "kind": k, "reason": r, "count": n} for (e, k, r), n in groups]
        print(json.dumps(rows, indent=2))
    else:
        print(f"{len(letters)} dead letter(s) in {len(groups)} group(s)")
        for (entity, kind, reason), n in groups:
            print(f"{n:>8}  {entity:<17} {kind:<10} {reason[:160]}")
    return 0


def show_letters(args: argparse.Namespace) -> int:
    """``dlq show``: the selected letters, one per line."""
    for item in _read(_selection(args))[: args.limit]:
        letter = item.letter
        row = {
            "at": item.coordinates,
            "entity": letter.entity,
            "kind": letter.kind,
            "reason": letter.reason,
            "source": f"{letter.source_topic}:{letter.partition}:{letter.offset}",
            "index": letter.index,
            "bytes": len(letter.value),
        }
        print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def replay_letters(args: argparse.Namespace) -> int:
    """``dlq replay``: re-publish the selected letters; exit 1 if some were still invalid."""
    import asyncio

    from agentstream.contract.settings import get_settings
    from agentstream.streams.dlq_admin import replay

    selection = _selection(args)
    if selection.everything and not args.all:
        raise CommandError(
            "say which letters to replay (--entity, --kind, --reason, --at; see `agentstream "
            "dlq list`), or --all for every one"
        )
    settings = get_settings()
    letters = _read(selection, settings)
    outcome = asyncio.run(replay(settings, letters, force=args.force, dry_run=args.dry_run))
    verb = "would replay" if args.dry_run else "replayed"
    if args.json:
        print(
            json.dumps(
                {
                    "replayed": [i.coordinates for i in outcome.replayed],
                    "still_invalid": [
                        {"at": i.coordinates, "reason": r} for i, r in outcome.still_invalid
                    ],
                    "dry_run": args.dry_run,
                }
            )
        )
    else:
        print(f"{verb} {len(outcome.replayed)} letter(s)")
        for item, reason in outcome.still_invalid:
            print(f"  skipped {item.coordinates}: still invalid: {reason[:200]}")
    return 0 if not outcome.still_invalid else 1


def _selection(args: argparse.Namespace) -> Selection:
    from agentstream.streams.dlq_admin import Selection

    return Selection(
        entity=args.entity,
        kind=args.kind,
        reason_contains=args.reason,
        coordinates=frozenset(args.at),
    )


def _read(selection: Selection, settings: Settings | None = None) -> list[LetterAt]:
    """The letters of the dead-letter topic that ``selection`` matches."""
    import asyncio

    from aiokafka.errors import KafkaError

    from agentstream.contract.settings import get_settings
    from agentstream.streams.dlq_admin import read_dead_letters

    settings = settings or get_settings()
    try:
        letters = asyncio.run(read_dead_letters(settings))
    except (TimeoutError, OSError, KafkaError) as exc:
        raise CommandError(
            f"cannot read the dead-letter topic at {settings.kafka_bootstrap}: {exc!r}; "
            f"{settings.kafka_advice()}"
        ) from None
    return [i for i in letters if selection.matches(i)]
