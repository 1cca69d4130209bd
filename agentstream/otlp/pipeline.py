"""One request's spans (or a resolver's batch) into the messages to publish.

Every span leaves two things: its records (when its context is known) and, on the spans
topic keyed by its trace, its facts (what its descendants inherit). A span whose context is
not known yet (an ancestor's span has not arrived) goes on the spans topic whole, for the
resolver (resolver.py) to map once it is. Nothing is kept in this process between requests.

The spans topic's items (JSON objects, batched in arrays like the entity topics):

* ``{"t": trace, "f": {span: [parent, session, user, agent], ...}}``: the facts of a
  request's spans of one trace (at most ``FACTS_PER_ITEM`` spans an item);
* ``{"t": trace, "w": span, "k": kind, "body": span}``: a span waiting for its ancestors;
* ``{"t": trace, "span": span, "f": {"p", "s", "u", "a"}, ["k", "body"]}``: one span's
  facts (and body), as the first version wrote them; still read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentstream.otlp.decode import SPAN_ID_BYTES, TRACE_ID_BYTES, Span, SpanEvent
from agentstream.otlp.mapping import (
    Context,
    FactsLike,
    MappingError,
    SpanKind,
    facts_of,
    kind_of,
    read,
    records_of,
    resolve,
    session_record,
)
from agentstream.otlp.rows import Row

__all__ = ["FACTS_PER_ITEM", "Mapped", "map_spans", "span_from_json", "span_to_json"]

# Bounds a facts item (~80 bytes a span) far below a Kafka message, whatever the request.
FACTS_PER_ITEM = 2000
_ZERO_TRACE, _ZERO_SPAN = bytes(TRACE_ID_BYTES), bytes(SPAN_ID_BYTES)


class Mapped:
    # A plain class (not a dataclass): compiled by mypyc, its __init__ is native code.
    def __init__(self) -> None:
        self.records: list[Row] = []
        # (trace hex, item) for the spans topic (the module's docstring has the items' shapes)
        self.span_items: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[tuple[str, str]] = []  # (metric label, reason)
        # Plain dicts: Counter's __init__ and += run as interpreted code (the resolver makes
        # a Mapped per poll).
        self.mapped: dict[str, int] = {}  # by kind
        self.dropped: dict[str, int] = {}  # by reason
        self.pending = 0
        # session id (text: a str hashes in C, a UUID in Python) -> [its context, earliest
        # start, latest end] among the spans mapped
        self._sessions: dict[str, list[Any]] = {}

    def add(self, span: Span, kind: SpanKind, ctx: Context, records: list[Row]) -> None:
        self.records.extend(records)
        self.mapped[kind] = self.mapped.get(kind, 0) + 1
        seen = self._sessions.get(ctx.session_text)
        if seen is None:
            self._sessions[ctx.session_text] = [ctx, span.start_ns, span.end_ns]
            return
        if span.start_ns < seen[1]:
            seen[1] = span.start_ns
        if span.end_ns > seen[2]:  # the latest span's context (its user) wins
            seen[0], seen[2] = ctx, span.end_ns

    def all_records(self) -> list[Row]:
        """One session record per session touched, then the spans' records."""
        sessions = [session_record(ctx, start, end) for ctx, start, end in self._sessions.values()]
        return sessions + self.records


def span_to_json(span: Span) -> dict[str, Any]:
    return {
        "t": span.trace_hex,
        "s": span.span_hex,
        "p": span.parent_hex,
        "n": span.name,
        "b": span.start_ns,
        "e": span.end_ns,
        "c": span.status_code,
        "m": span.status_message,
        "a": span.attributes,
        "r": span.resource,
        "ev": [[e.name, e.time_ns, e.attributes] for e in span.events],
        "rp": span.parent_remote,
    }


def span_from_json(d: dict[str, Any]) -> Span:
    return Span(
        trace_id=bytes.fromhex(d["t"]),
        span_id=bytes.fromhex(d["s"]),
        parent_span_id=bytes.fromhex(d["p"]) if d.get("p") else b"",
        name=d["n"],
        start_ns=d["b"],
        end_ns=d["e"],
        status_code=d["c"],
        status_message=d["m"],
        attributes=d["a"],
        resource=d["r"],
        events=[SpanEvent(n, t, a) for n, t, a in d["ev"]],
        parent_remote=bool(d.get("rp")),
    )


# A span's records (or, while it waits, the span itself) travel as one Kafka message, which
# the broker takes up to 10 MiB of; text may take up to 4 bytes a character in UTF-8 and the
# prompt and response hold it again as JSON: past this, the span is refused, not retried.
MAX_SPAN_TEXT = 1024 * 1024


def _text_size(span: Span) -> int:
    size = sum(len(v) for v in span.attributes.values() if isinstance(v, str))
    for event in span.events:
        size += sum(len(v) for v in event.attributes.values() if isinstance(v, str))
    return size


def map_spans(spans: Iterable[Span], *, keep_other: bool, body_bytes: int | None = None) -> Mapped:
    """``body_bytes``: the size of the (inflated) body the spans came in, if known. A body
    smaller than MAX_SPAN_TEXT cannot hold a span past it (a character takes at least a
    byte, in UTF-8 and in JSON), so their text is not counted."""
    out = Mapped()
    count_text = body_bytes is None or body_bytes > MAX_SPAN_TEXT
    valid: list[tuple[Span, SpanKind, dict[str, Any]]] = []
    # trace hex -> span hex -> facts: what the request itself knows, and what it publishes
    traces: dict[str, dict[str, FactsLike]] = {}
    waiting: list[tuple[str, dict[str, Any]]] = []
    for span in spans:
        # The usual ids checked inline (a call per span cost more than the check); any
        # other length, or an all-zero id, gets its reason from id_problem.
        if (
            len(span.trace_id) != TRACE_ID_BYTES
            or len(span.span_id) != SPAN_ID_BYTES
            or len(span.parent_span_id) not in (0, SPAN_ID_BYTES)
            or span.trace_id == _ZERO_TRACE
            or span.span_id == _ZERO_SPAN
        ) and (problem := span.id_problem()) is not None:
            out.rejected.append(("invalid_ids", f"span {span.span_id.hex() or '?'}: {problem}"))
            continue
        size = _text_size(span) if count_text else 0
        if size > MAX_SPAN_TEXT:
            reason = (
                f"{size} characters of text attributes exceed the {MAX_SPAN_TEXT} a span may carry"
            )
            out.rejected.append(("too_large", f"span {span.span_hex}: {reason}"))
            continue
        kind = kind_of(span)
        said = read(span)
        valid.append((span, kind, said))
        facts = traces.get(span.trace_hex)
        if facts is None:
            facts = traces[span.trace_hex] = {}
        facts[span.span_hex] = facts_of(span, kind, said)
    for span, kind, said in valid:
        if kind == "other" and not keep_other:
            out.dropped["no_genai_meaning"] = out.dropped.get("no_genai_meaning", 0) + 1
            continue
        trace = span.trace_hex
        lookup = traces[trace].get
        ctx = resolve(trace, span.span_hex, lookup)
        if ctx is None:
            # Refused now, with its reason in this response, if it would be refused whatever
            # its ancestors turn out to be (bad token counts, ...): mapped with its defaults.
            try:
                records_of(span, kind, resolve(trace, span.span_hex, lookup, final=True), said)  # type: ignore[arg-type]
            except MappingError as exc:
                out.rejected.append(("invalid_values", f"span {span.span_hex}: {exc}"))
                continue
            body = span_to_json(span)
            waiting.append((trace, {"t": trace, "w": span.span_hex, "k": kind, "body": body}))
            out.pending += 1
            continue
        try:
            out.add(span, kind, ctx, records_of(span, kind, ctx, said))
        except MappingError as exc:
            out.rejected.append(("invalid_values", f"span {span.span_hex}: {exc}"))
    for trace, facts in traces.items():
        if len(facts) <= FACTS_PER_ITEM:
            out.span_items.append((trace, {"t": trace, "f": facts}))
            continue
        pairs = list(facts.items())
        for i in range(0, len(pairs), FACTS_PER_ITEM):
            out.span_items.append((trace, {"t": trace, "f": dict(pairs[i : i + FACTS_PER_ITEM])}))
    # After the facts: in a partition the resolver reads a waiting span's own facts first.
    out.span_items.extend(waiting)
    return out
