"""``agentstream schema``: the JSON Schema of every topic's records (the wire contract)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "schema",
        help="print the JSON Schema of each topic's records",
        description="Print the JSON Schema of the records of each topic. A message value is "
        "one record (an object) or a batch (an array of records).",
    )
    p.add_argument("entity", nargs="?", help="only this entity (e.g. events), or alerts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentstream.cli.main import CommandError
    from agentstream.contract.alerts import Alert
    from agentstream.contract.entities import ENTITY_MODELS
    from agentstream.contract.settings import get_settings
    from agentstream.contract.topics import ALERTS_SUFFIX, alerts_topic, topic_for

    prefix = get_settings().topic_prefix
    if args.entity and args.entity not in ENTITY_MODELS and args.entity != ALERTS_SUFFIX:
        raise CommandError(
            f"unknown entity {args.entity!r}; one of {', '.join(ENTITY_MODELS)}, {ALERTS_SUFFIX}"
        )
    out = {}
    for entity, model in ENTITY_MODELS.items():
        if args.entity and entity != args.entity:
            continue
        record = model.model_json_schema(mode="validation")
        out[topic_for(entity, prefix)] = {
            "description": f"one {model.__name__} record, or an array of them",
            "oneOf": [record, {"type": "array", "items": record, "minItems": 1}],
        }
    if not args.entity or args.entity == ALERTS_SUFFIX:
        # Written by `agentstream alerts run`, one record per message.
        out[alerts_topic(prefix)] = {
            **Alert.model_json_schema(mode="serialization"),
            "description": "one Alert record per message, keyed by its id",
        }
    print(json.dumps(out, indent=2))
    return 0
