"""The HTML report: one self-contained file (inline SVG charts by matplotlib, inline CSS).

No script, font or stylesheet is fetched from anywhere, so the file opens offline and can be
mailed. Every chart is an ``<figure class="chart" id="chart-...">`` holding an ``<svg>``,
so a headless browser can check that each one is drawn. Charts: cost over time by model,
cost over time split as billed (input, cached input, cache write, output and the reasoning
part of it), latency percentiles over time, time to first token by model, error rate over
time, top sessions and top agents by cost.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from agentstream.analytics.report import Report, price_flag_notes, render_table

__all__ = ["CHART_IDS", "render_html"]

CHART_IDS = (
    "chart-cost-by-model",
    "chart-cost-split",
    "chart-latency-percentiles",
    "chart-ttft-by-model",
    "chart-error-rate",
    "chart-top-sessions",
    "chart-top-agents",
)


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline SVG


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(alpha=0.3)
    return fig, ax


def _empty(ax: Any) -> None:
    ax.text(
        0.5,
        0.5,
        "no data in this window",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="#888",
    )


def _tag(bars: Any, gid: str) -> None:
    """Mark data shapes in the SVG (``id="data-…"``): the Chromium test looks for them."""
    for i, patch in enumerate(bars):
        patch.set_gid(f"{gid}-{i}")


def _span(buckets: list[datetime]) -> timedelta:
    """The width of one bucket: the smallest step between buckets, an hour when only one."""
    steps = [b - a for a, b in pairwise(buckets) if b > a]
    return min(steps) if steps else timedelta(hours=1)


def _time_axis(fig: Any, ax: Any, buckets: list[datetime]) -> None:
    """Dates on x, and a sane range even for one bucket (matplotlib would show years)."""
    width = _span(buckets)
    ax.set_xlim(min(buckets) - width, max(buckets) + width)
    fig.autofmt_xdate()


def _stacked(
    fig: Any, ax: Any, buckets: list[datetime], layers: list[tuple[str, list[float]]], gid: str
) -> None:
    """Stacked bars over time, one layer per label: honest for one bucket as for a hundred
    (a stacked area needs two)."""
    width = _span(buckets) * 0.8
    bottom = [0.0] * len(buckets)
    for n, (label, heights) in enumerate(layers):
        bars = ax.bar(buckets, heights, width=width, bottom=bottom, label=label, alpha=0.85)
        _tag(bars, f"{gid}-{n}")
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _time_axis(fig, ax, buckets)


def _cost_by_model(series: dict[str, list[dict[str, Any]]]) -> str:
    fig, ax = _figure("Cost over time by model (USD)")
    per_model: dict[str, dict[datetime, float]] = defaultdict(dict)
    for r in series["by_model"]:
        per_model[r["model"]][r["bucket"]] = float(r["cost"])
    buckets = sorted({r["bucket"] for r in series["by_model"]})
    if buckets:
        ranked = sorted(per_model, key=lambda m: -sum(per_model[m].values()))
        layers = [(m, [per_model[m].get(b, 0.0) for b in buckets]) for m in ranked]
        _stacked(fig, ax, buckets, layers, "data-cost")
    else:
        _empty(ax)
    return _svg(fig)


# The parts of the cost, stacked: output without its reasoning part, then reasoning.
_SPLIT = (
    ("input", "input"),
    ("cached input", "cached_input"),
    ("cache write", "cache_write"),
    ("output (answer)", None),
    ("output (reasoning)", "reasoning"),
)


def _cost_split(series: dict[str, list[dict[str, Any]]]) -> str:
    fig, ax = _figure("Cost over time as billed (USD)")
    rows = series["overall"]
    if rows:

        def part(r: dict[str, Any], name: str | None) -> float:
            if name is None:  # the output that is not reasoning
                return float(r["output_cost"] - r["reasoning_cost"])
            return float(r[f"{name}_cost"])

        layers = [(label, [part(r, name) for r in rows]) for label, name in _SPLIT]
        _stacked(fig, ax, [r["bucket"] for r in rows], layers, "data-split")
    else:
        _empty(ax)
    return _svg(fig)


def _ttft(series: dict[str, list[dict[str, Any]]]) -> str:
    fig, ax = _figure("Time to first token by model (ms, streamed calls)")
    rows = series["ttft_by_model"]
    if rows:
        positions = list(range(len(rows)))
        for n, name in enumerate(("p50", "p95", "p99")):
            bars = ax.bar(
                [p + (n - 1) * 0.27 for p in positions],
                [r["t"][n] for r in rows],
                width=0.27,
                label=name,
            )
            _tag(bars, f"data-ttft-{name}")
        ax.set_xticks(positions, [r["model"] for r in rows], fontsize=7, rotation=20)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    else:
        _empty(ax)
    return _svg(fig)


def _series(ax: Any, x: list[datetime], y: list[float], gid: str, **style: Any) -> None:
    """One line over time, a marker per bucket (one bucket still shows), tagged as data."""
    (line,) = ax.plot(x, y, linewidth=1.2, marker="o", markersize=3, **style)
    line.set_gid(gid)


def _latency(series: dict[str, list[dict[str, Any]]]) -> str:
    fig, ax = _figure("Latency percentiles (ms)")
    rows = series["overall"]
    if rows:
        x = [r["bucket"] for r in rows]
        for name in ("p50", "p90", "p95", "p99"):
            y = [r[f"latency_{name}"] for r in rows]
            _series(ax, x, y, f"data-latency-{name}", label=name)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        _time_axis(fig, ax, x)
    else:
        _empty(ax)
    return _svg(fig)


def _errors(series: dict[str, list[dict[str, Any]]]) -> str:
    fig, ax = _figure("Error rate (% of calls)")
    rows = series["overall"]
    if rows:
        x = [r["bucket"] for r in rows]
        y = [100 * r["error_rate"] for r in rows]
        _series(ax, x, y, "data-error-rate", color="#c0392b")
        ax.set_ylim(bottom=0)
        _time_axis(fig, ax, x)
    else:
        _empty(ax)
    return _svg(fig)


def _top(rows: list[dict[str, Any]], title: str) -> str:
    fig, ax = _figure(title)
    if rows:
        labels = [f"{r['key'][:8]}… {r['label'] or ''}" for r in rows][::-1]
        bars = ax.barh(labels, [float(r["cost"]) for r in rows][::-1], color="#2c7fb8")
        _tag(bars, "data-top")
        ax.tick_params(axis="y", labelsize=7)
    else:
        _empty(ax)
    return _svg(fig)


def _money(value: Any) -> str:
    return f"${Decimal(value):,.4f}"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.0f} ms"


def _flags(totals: dict[str, Any]) -> str:
    """The calls costed by a stand-in rate: said plainly, next to the figures."""
    notes = price_flag_notes(totals)
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}.</li>" for n in notes)
    return f'<section class="unpriced" id="price-flags"><ul>{items}</ul></section>'


def _group(alert: dict[str, Any]) -> str:
    if alert["group_by"] == "none":
        return "all"
    return f"{html.escape(alert['group_by'])}={html.escape(alert['group_key'])}"


def _alerts(alerts: list[dict[str, Any]]) -> str:
    """The streaming alerts of the report's window, newest first."""
    if not alerts:
        return '<section id="alerts"><h2>Alerts</h2><p>No alert fired in this window.</p></section>'
    head = "".join(
        f"<th>{h}</th>" for h in ("fired (UTC)", "rule", "group", "window", "level", "value")
    )
    rows = "".join(
        "<tr>"
        f"<td>{a['fired_at']:%Y-%m-%d %H:%M:%S}</td><td>{html.escape(a['rule'])}</td>"
        f"<td>{_group(a)}</td>"
        f"<td>{a['window_start']:%Y-%m-%d %H:%M}..{a['window_end']:%Y-%m-%d %H:%M}</td>"
        f"<td>{html.escape(a['level'])}</td><td>{html.escape(str(a['value']))}</td>"
        "</tr>"
        for a in alerts
    )
    return f'<section id="alerts"><h2>Alerts</h2><table><tr>{head}</tr>{rows}</table></section>'


def render_html(report: Report) -> str:
    s = report.series
    charts = [
        ("chart-cost-by-model", _cost_by_model(s)),
        ("chart-cost-split", _cost_split(s)),
        ("chart-latency-percentiles", _latency(s)),
        ("chart-ttft-by-model", _ttft(s)),
        ("chart-error-rate", _errors(s)),
        ("chart-top-sessions", _top(s["top_sessions"], "Top sessions by cost (USD)")),
        ("chart-top-agents", _top(s["top_agents"], "Top agents by cost (USD)")),
    ]
    t = report.totals
    unpriced = ""
    if report.unpriced_models:
        items = "".join(
            f"<li><code>{html.escape(u['model'])}</code>: {u['calls']:,} calls</li>"
            for u in report.unpriced_models
        )
        unpriced = (
            '<section class="unpriced" id="unpriced-models"><h2>Unpriced models</h2>'
            "<p>These calls have no price in force and are <b>not</b> in the cost figures. "
            "Add the models to your prices file (AGENTSTREAM_PRICES_FILE).</p>"
            f"<ul>{items}</ul></section>"
        )
    figures = "\n".join(f'<figure class="chart" id="{cid}">{svg}</figure>' for cid, svg in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>agentstream report {report.since:%Y-%m-%d} .. {report.until:%Y-%m-%d}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
.kpis {{ display: flex; gap: 2em; flex-wrap: wrap; }}
.kpi b {{ display: block; font-size: 1.5em; }}
.unpriced {{ border: 2px solid #c0392b; background: #fdecea; padding: 0 1em; margin: 1em 0; }}
figure.chart {{ margin: 1.5em 0; }}
figure.chart svg {{ max-width: 100%; height: auto; }}
pre {{ font-size: 11px; overflow-x: auto; background: #f6f6f6; padding: 1em; }}
</style></head><body>
<h1>LLM cost and latency</h1>
<p>{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC, by {report.by}</p>
<div class="kpis">
<div class="kpi" id="total-cost"><b>{_money(t["cost"])}</b>cost</div>
<div class="kpi" id="total-calls"><b>{t["calls"]:,}</b>calls</div>
<div class="kpi"><b>{100 * float(t["error_rate"]):.2f}%</b>errors</div>
<div class="kpi"><b>{t["latency_p95"] or 0:,.0f} ms</b>p95 latency</div>
<div class="kpi"><b>{t["unpriced_calls"]:,}</b>unpriced calls</div>
<div class="kpi" id="cache-hit-ratio"><b>{_percent(t["cache_hit_ratio"])}</b>cache hit ratio</div>
<div class="kpi"><b>{_ms(t["ttft_p95"])}</b>p95 time to first token</div>
</div>
{_flags(t)}
{unpriced}
{_alerts(report.alerts)}
{figures}
<h2>By {html.escape(report.by)}</h2>
<pre id="report-table">{html.escape(render_table(report))}</pre>
</body></html>
"""
