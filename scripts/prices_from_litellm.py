"""Cross-check the shipped price table against litellm's, and add the models it lacks.

litellm publishes per-token list prices of every OpenAI, Anthropic and Google model in
``model_prices_and_context_window_backup.json`` inside its wheel, each entry naming the
provider page it comes from. This build machine reaches PyPI but not the providers' pages,
so that table is the second source the shipped one is checked against:

    pip download litellm --no-deps -d /tmp/l && cd /tmp/l && unzip -o litellm-*.whl \
        litellm/model_prices_and_context_window_backup.json
    .venv/bin/python scripts/prices_from_litellm.py \
        /tmp/l/litellm/model_prices_and_context_window_backup.json [--write]

For each text model of the three providers (chat or responses mode, not deprecated on
``--checked``; moving ``-latest`` aliases, audio, realtime, search and media models left out)
and each service tier litellm prices it at (default, batch, flex, priority):

* a tier the shipped table already prices (an exact row or a pattern, in force on
  ``--checked``, not a fallback to the default tier) is compared rate by rate and every
  difference is printed; the shipped row is never changed by this script: a person decides;
* fine-tuned models (``ft:``, named per customer) and models litellm lists at $0
  (free experimental ones) are left out;
* a tier it does not price gets a new row with ``--write``: litellm's rates per 1M tokens,
  its long-prompt tiers (``*_above_<N>k_tokens``: the whole request at the higher rates, as
  the table's ``tiers`` mean), cache writes as input where litellm has no cache-write price
  and the provider charges no premium (OpenAI, Google), ``effective_from`` the date in the
  model's name or a dated sibling's, else ``--undated-from``.

Exits 1 when there are differences, so a maintainer sees them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentstream.analytics.prices import SHIPPED_PRICES, _covers, load_price_file, resolve_call

PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
SERVICE_TIERS = {"default": "", "batch": "_batches", "flex": "_flex", "priority": "_priority"}
LONG_PROMPT_THRESHOLDS = (100, 128, 200, 272)  # thousands of prompt tokens, as litellm names them
# Not text-token models, or aliases whose price moves with the model behind them.
SKIP = re.compile(r"audio|realtime|search|tts|transcribe|image|lyria|robotics|container|-latest$")
DATED = re.compile(r"-(\d{4})-?(\d{2})-?(\d{2})$")


def per_mtok(per_token: float | None) -> str | None:
    if per_token is None:
        return None
    value = Decimal(repr(per_token)) * 1_000_000
    return format(value.quantize(Decimal("0.000001")).normalize(), "f")


def name_date(name: str) -> date | None:
    m = DATED.search(name)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def rates(entry: dict[str, Any], provider: str, suffix: str, above: str = "") -> dict[str, str]:
    def get(field: str) -> str | None:
        return per_mtok(entry.get(f"{field}{above}{suffix}"))

    out = {"input": get("input_cost_per_token"), "output": get("output_cost_per_token")}
    if above and out["output"] is None:
        out["output"] = per_mtok(entry.get(f"output_cost_per_token{suffix}"))
    cached, written = get("cache_read_input_token_cost"), get("cache_creation_input_token_cost")
    if cached is not None:
        out["cached_input"] = cached
    if written is not None:
        out["cache_write"] = written
    elif provider != "anthropic":
        out["cache_write"] = out["input"]  # no premium for writing the cache
    reasoning = per_mtok(entry.get("output_cost_per_reasoning_token")) if not suffix else None
    if reasoning is not None and reasoning != out["output"] and not above:
        out["reasoning"] = reasoning
    return {k: v for k, v in out.items() if v is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("litellm_json", type=Path)
    parser.add_argument("--checked", type=date.fromisoformat, default=date.today())
    parser.add_argument("--undated-from", default="2025-01-01")
    parser.add_argument("--write", action="store_true", help="add the missing rows")
    args = parser.parse_args()

    table: dict[str, dict[str, Any]] = json.loads(args.litellm_json.read_text())
    shipped = load_price_file(SHIPPED_PRICES)
    at = datetime.combine(args.checked, datetime.min.time(), UTC)
    names = {key.split("/", 1)[-1] for key in table}
    added: list[dict[str, Any]] = []
    differences = 0
    for key, entry in sorted(table.items()):
        provider = PROVIDERS.get(str(entry.get("litellm_provider")))
        if provider is None or entry.get("mode") not in ("chat", "responses"):
            continue
        name = key.split("/", 1)[-1]
        if "/" in name or name.startswith("ft:") or SKIP.search(name):
            continue
        if not entry.get("input_cost_per_token") and not entry.get("output_cost_per_token"):
            continue  # experimental models offered free: no list price to ship
        if str(entry.get("deprecation_date") or "9999") < args.checked.isoformat():
            continue
        for tier, suffix in SERVICE_TIERS.items():
            if f"input_cost_per_token{suffix}" not in entry:
                continue
            theirs = rates(entry, provider, suffix)
            periods = resolve_call(name, None if tier == "default" else tier, shipped)
            period = next((p for p in periods if _covers(p, at)), None)
            if period is not None and not period.fallback:
                ours = period.price.base_rates
                for field, value in theirs.items():
                    mine = getattr(ours, field)
                    if mine is None or mine != Decimal(value):
                        differences += 1
                        print(
                            f"differs: {name} [{tier}] {field}: shipped "
                            f"{mine} ({period.price.model}), litellm {value}"
                        )
                continue
            siblings = (name_date(other) for other in names if other.startswith(name + "-"))
            dated = name_date(name) or min((d for d in siblings if d is not None), default=None)
            row: dict[str, Any] = {
                "provider": provider,
                "model": name,
                "pattern": False,
                "effective_from": dated.isoformat() if dated else args.undated_from,
                "effective_to": None,
                **theirs,
            }
            if tier != "default":
                row["service_tier"] = tier
            tiers = [
                {
                    "above_prompt_tokens": k * 1000,
                    **rates(entry, provider, suffix, f"_above_{k}k_tokens"),
                }
                for k in LONG_PROMPT_THRESHOLDS
                if f"input_cost_per_token_above_{k}k_tokens{suffix}" in entry
            ]
            if tiers:
                row["tiers"] = tiers
            row["checked"] = args.checked.isoformat()
            added.append(row)
            print(f"missing: {name} [{tier}] {theirs}" + (f" tiers {tiers}" if tiers else ""))
    added_names = {row["model"] for row in added}
    print(f"{len(added)} rows missing, {differences} rates differ", file=sys.stderr)
    if args.write and added:
        doc = json.loads(SHIPPED_PRICES.read_text(encoding="utf-8"))
        doc["prices"].extend(added)
        for key, entry in table.items():  # the pages litellm cites for what was added
            provider = PROVIDERS.get(str(entry.get("litellm_provider")))
            cited = entry.get("source")
            if provider and isinstance(cited, str) and key.split("/", 1)[-1] in added_names:
                pages = doc["sources"].setdefault(provider, [])
                if cited not in pages:
                    pages.append(cited)
        Path(str(SHIPPED_PRICES)).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
