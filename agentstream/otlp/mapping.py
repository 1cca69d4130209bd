"""OpenTelemetry spans into agentstream records (docs/otel.md has the table).

A span's records depend on its ancestors: the session, the user and the agent of an LLM call
are often set only on the agent's or the root's span, which ends (and is exported) after it.
So mapping is two steps:

* :func:`facts_of` reads what a span says about itself and passes down to its descendants
  (``Facts``: parent, explicit session, user, agent identity);
* :func:`resolve` walks a span's ancestors' facts to its :class:`Context` (session id, user id,
  agent id), or says it cannot yet (an ancestor has not been seen);
* :func:`records_of` builds the span's records once its context is known.

Every id is derived (uuid5) from OTel ids or attribute values, never drawn at random, so the
same span mapped twice, by any process, gives the same records.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

from agentstream.contract.entities import INT4_MAX, usage_problem
from agentstream.otlp.decode import STATUS_ERROR, Span
from agentstream.otlp.rows import Row, row

__all__ = [
    "FACTS_LENGTH",
    "USER_PLACEHOLDER",
    "Context",
    "Facts",
    "FactsLike",
    "MappingError",
    "SpanKind",
    "facts_from_first_json",
    "facts_of",
    "kind_of",
    "read",
    "records_of",
    "resolve",
]

# Namespace of every id the intake derives.
OTEL_NAMESPACE: Final = uuid.UUID("0f6b3f2e-8d1a-5b7c-a4e9-3c2d1b0a9f87")
# The user of a session whose spans name none (the sink's inferred sessions use the same).
USER_PLACEHOLDER: Final = "unknown"
# The model of an LLM span that names none.
MODEL_PLACEHOLDER: Final = "unknown"
# Marks a value cut to fit a varchar column (the seed's limits: 50/100/255 characters).
TRUNCATED: Final = "…"

SpanKind = Literal["llm", "agent", "tool", "other"]

_LLM_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_AGENT_OPERATIONS: Final = frozenset({"invoke_agent", "create_agent"})
_OPENINFERENCE_KINDS: Final[dict[str, SpanKind]] = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "AGENT": "agent",
    "TOOL": "tool",
}
_TRACELOOP_KINDS: Final[dict[str, SpanKind]] = {"agent": "agent", "tool": "tool"}

# Attribute names by meaning, first match wins: current GenAI name, older GenAI names,
# OpenLLMetry, OpenInference.
SESSION_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
)
USER_KEYS = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
AGENT_NAME_KEYS = ("gen_ai.agent.name", "agent.name", "traceloop.entity.name")
TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "traceloop.entity.name")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
TOTAL_TOKEN_KEYS = ("llm.usage.total_tokens", "llm.token_count.total")
CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
)
SERVICE_TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)


# Everything read from a span (or its resource) by meaning, from the names above.
_READS: dict[str, tuple[str, ...]] = {
    "session": SESSION_KEYS,
    "user": USER_KEYS,
    "agent_name": AGENT_NAME_KEYS,
    "tool_name": TOOL_NAME_KEYS,
    "model": MODEL_KEYS,
    "request_model": ("gen_ai.request.model", "llm.model_name"),
    "provider": PROVIDER_KEYS,
    "input_tokens": INPUT_TOKEN_KEYS,
    "output_tokens": OUTPUT_TOKEN_KEYS,
    "total_tokens": TOTAL_TOKEN_KEYS,
    "cache_read_tokens": CACHE_READ_KEYS,
    "cache_write_tokens": CACHE_WRITE_KEYS,
    "reasoning_tokens": REASONING_KEYS,
    "service_tier": SERVICE_TIER_KEYS,
    "time_to_first_chunk": ("gen_ai.response.time_to_first_chunk",),
    "finish_reason": ("gen_ai.response.finish_reasons", "llm.response.finish_reason"),
    "error_type": ("error.type",),
}
# attribute name -> every (meaning, rank) it says; rank 0 is the meaning's first name.
_MEANINGS: dict[str, list[tuple[str, int]]] = {}
for _meaning, _names in _READS.items():
    for _rank, _name in enumerate(_names):
        _MEANINGS.setdefault(_name, []).append((_meaning, _rank))
_NAMES: Final = frozenset(_MEANINGS)
_NO_RANK: Final = len(_NAMES)


def _said_by_rank(attributes: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """meaning -> the value of its first name set (not None) in ``attributes``."""
    said: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    for name in names:
        value = attributes[name]
        if value is None:
            continue
        for meaning, rank in _MEANINGS[name]:
            if rank < ranks.get(meaning, _NO_RANK):
                ranks[meaning] = rank
                said[meaning] = value
    return said


# The names of _READS a span sets -> (meaning, the name it is read from): spans of one
# instrumentation set the same few names, so each set of names is ranked once. Bounded:
# cleared when full (the sets seen in practice are a handful).
_PLANS: Final[dict[frozenset[str], tuple[tuple[str, str], ...]]] = {}
_MAX_PLANS: Final = 1024


def _said(attributes: dict[str, Any]) -> dict[str, Any]:
    """meaning -> the value of its first name set in ``attributes``."""
    names = _NAMES.intersection(attributes)  # the few names that mean something
    plan = _PLANS.get(names)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        # Ranking the names themselves (each its own value) gives each meaning's name.
        plan = _PLANS[names] = tuple(_said_by_rank({n: n for n in names}, names).items())
    said: dict[str, Any] = {}
    for meaning, name in plan:
        value = attributes[name]
        if value is None:  # a name set without a value: the next name of its meaning reads
            return _said_by_rank(attributes, names)
        said[meaning] = value
    return said


_last_resource: tuple[dict[str, Any], dict[str, Any]] = ({}, {})


def read(span: Span) -> dict[str, Any]:
    """What the span says by meaning (``_READS``): for each, the first of its names set on
    the span, else on its resource. One pass over the attributes instead of a lookup per
    name and meaning; a resource (shared by a request's spans) is read once."""
    global _last_resource
    said = _said(span.attributes)
    resource = span.resource
    if not resource:
        return said
    if _last_resource[0] is not resource:
        _last_resource = (resource, _said(resource))
    from_resource = _last_resource[1]
    return from_resource | said if from_resource else said


class MappingError(ValueError):
    """A span refused: its reason goes into the response's partial_success.error_message."""


def _id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(OTEL_NAMESPACE, "\x1f".join(parts))


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; OTel strings can. Replaced, not refused.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _fit(value: Any, limit: int) -> str:
    text = _clean(value if isinstance(value, str) else json.dumps(value, default=str))
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _clean(value) if isinstance(value, str) else _clean(json.dumps(value, default=str))


def kind_of(span: Span) -> SpanKind:
    op = span.attributes.get("gen_ai.operation.name")
    if isinstance(op, str):
        if op in _LLM_OPERATIONS:
            return "llm"
        if op in _AGENT_OPERATIONS:
            return "agent"
        if op == "execute_tool":
            return "tool"
    oi = span.attributes.get("openinference.span.kind")
    if isinstance(oi, str) and oi.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[oi.upper()]
    tl = span.attributes.get("traceloop.span.kind")
    if isinstance(tl, str) and tl in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[tl]
    # Older GenAI and OpenLLMetry LLM spans: no operation name, a system and a model.
    if span.attributes.get("llm.request.type") is not None or (
        span.attributes.get("gen_ai.system") is not None
        and span.attributes.get("gen_ai.request.model") is not None
    ):
        return "llm"
    return "other"


# What a span says about itself that its descendants inherit: (parent span id hex, explicit
# session key, user, agent identity "id:<gen_ai.agent.id>" or "name:<name>"). A plain tuple,
# as it travels on the spans topic (a JSON array, which ``resolve`` takes as it is read).
Facts = tuple[str | None, str | None, str | None, str | None]
FactsLike = Facts | Sequence[str | None]
FACTS_LENGTH = 4


def facts_from_first_json(d: dict[str, Any]) -> Facts:
    """Facts as the first version of the spans topic spelled them (an object)."""
    return (d.get("p"), d.get("s"), d.get("u"), d.get("a"))


def agent_name(span: Span, said: dict[str, Any]) -> str:
    name = _str(said.get("agent_name"))
    if name is None:
        # invoke_agent spans are named "invoke_agent {gen_ai.agent.name}" when they have one.
        name = span.name.removeprefix("invoke_agent ").removeprefix("create_agent ") or "agent"
    return name


def facts_of(span: Span, kind: SpanKind, said: dict[str, Any]) -> Facts:
    """``said``: ``read(span)``."""
    agent = None
    if kind == "agent":
        agent_id = _str(span.attributes.get("gen_ai.agent.id"))
        agent = f"id:{agent_id}" if agent_id else f"name:{agent_name(span, said)}"
    # A span whose parent is remote is where its process's part of the trace begins.
    parent = None if span.parent_remote else span.parent_hex
    return (parent, _str(said.get("session")), _str(said.get("user")), agent)


class Context(NamedTuple):
    session_id: uuid.UUID
    session_key: str
    user_id: str
    agent_id: uuid.UUID | None
    session_text: str  # session_id as the records spell it (and their Kafka key)
    agent_text: str | None  # agent_id as text (a tool call's payload spells it)


@functools.lru_cache(maxsize=65536)
def session_id_of(key: str) -> uuid.UUID:
    """A session key that is a UUID is the session's id (our SDK's sessions); others hash."""
    try:
        return uuid.UUID(key)
    except ValueError:
        return _id("session", key)


@functools.lru_cache(maxsize=65536)
def agent_id_of(agent: str, session_id: uuid.UUID) -> uuid.UUID:
    if agent.startswith("id:"):
        return _id("agent", agent)
    return _id("agent", str(session_id), agent)


def resolve(
    trace_hex: str,
    span_hex: str,
    lookup: Callable[[str], FactsLike | None],
    *,
    final: bool = False,
) -> Context | None:
    """The span's context from its own and its ancestors' facts, nearest first.

    None while an ancestor needed for it has not been seen, unless ``final`` (the wait is
    over: what is missing takes its default — the trace as session, the placeholder user,
    no agent).
    """
    session = user = agent = None
    agent_session: str | None = None  # the session at or above the agent span
    current: str | None = span_hex
    complete = False
    for _ in range(1000):  # a parent cycle in bad input must not loop forever
        if current is None:
            complete = True
            break
        facts = lookup(current)
        if facts is None:
            if not final:
                return None
            break
        parent, its_session, its_user, its_agent = facts
        session = session or its_session
        user = user or its_user
        if agent is None and its_agent is not None:
            agent = its_agent
        if agent is not None and agent_session is None:
            agent_session = its_session
        if (
            session is not None
            and user is not None
            and agent is not None
            and (agent_session is not None or agent.startswith("id:"))
        ):
            complete = True
            break
        current = parent
    if not complete and not final:
        return None
    key = session or f"trace:{trace_hex}"
    agent_key = None if agent is None else agent_session or f"trace:{trace_hex}"
    return _context(key, user or USER_PLACEHOLDER, agent, agent_key)


@functools.lru_cache(maxsize=65536)
def _context(session_key: str, user: str, agent: str | None, agent_session: str | None) -> Context:
    # A request's spans share a few contexts: each built once (a Context is immutable), so
    # what it derives from the keys needs no cache of its own.
    agent_id = (
        None
        if agent is None or agent_session is None
        else agent_id_of(agent, session_id_of(agent_session))
    )
    session_id = session_id_of(session_key)
    agent_text = None if agent_id is None else str(agent_id)
    return Context(session_id, session_key, user, agent_id, str(session_id), agent_text)


# Span times the seed's timestamptz and Python can both hold (years 1970-9999).
_LATEST_NS: Final = 253_402_214_400 * 10**9  # 9999-12-30
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ns: int) -> str:
    """The RFC 3339 text of a span time, to the microsecond (as a float of seconds is not)."""
    if not 0 <= ns < _LATEST_NS:
        raise MappingError(f"span time {ns} ns since the epoch is out of range")
    us = ns // 1000
    seconds = us // 1_000_000
    micros = us - seconds * 1_000_000
    # Spelled as pydantic spells a datetime (what the SDK sends): no fraction when it is 0.
    # The six digits as str() of 1xxxxxx without its 1: a format spec is a slow call compiled.
    if micros:
        return _second(seconds) + "." + str(micros + 1_000_000)[1:] + "Z"
    return _second(seconds) + "Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # A request's spans start and end within a few seconds: each formatted once.
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def _count(said: dict[str, Any], meaning: str, name: str) -> int | None:
    value: Any = said.get(meaning)
    if value is None:
        return None
    if type(value) is int and 0 <= value <= INT4_MAX:  # nearly every count: as sent
        return value
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise MappingError(f"{name} is not a number: {value[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"{name} is not an integer: {str(value)[:40]!r}")
    if value < 0 or value > INT4_MAX:
        raise MappingError(f"{name} is out of range (0..{INT4_MAX}): {value}")
    return value


def _indexed_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.field`` attributes (gen_ai.prompt.0.role, llm.input_messages.0.message.role)
    as a list of ``{"role": ..., "content": ...}`` in N order."""
    found: dict[int, dict[str, Any]] = {}
    for name, value in attrs.items():  # compiled: a plain loop (most spans have none)
        if not name.startswith(prefix):
            continue
        index, _, rest = name[len(prefix) :].partition(".")
        if not index.isdigit() or not rest:
            continue
        rest = rest.removeprefix("message.")
        found.setdefault(int(index), {})[rest] = value
    if not found:
        return []
    return [found[i] for i in sorted(found)]


def _event_messages(span: Span, names: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for event in span.events:
        if event.name in names:
            message = dict(event.attributes)
            message.setdefault("role", event.name.removeprefix("gen_ai.").removesuffix(".message"))
            out.append(message)
    return out


_INPUT_EVENTS: Final = (
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
)


def _messages(span: Span, output: bool) -> str | None:
    """Prompt (or response) text: a JSON array of messages, or the raw input/output value.

    Tried in order (the first found wins; the later ones are not even looked for):
    gen_ai.input.messages (a JSON string kept as sent), the older gen_ai.prompt.N.*
    attributes, the older span events, OpenInference's llm.input_messages.N.*, and
    input.value (kept as sent). System instructions come first, as a "system" message.
    """
    a = span.attributes
    structured = a.get("gen_ai.output.messages" if output else "gen_ai.input.messages")
    system = None if output else a.get("gen_ai.system_instructions")
    if isinstance(structured, str) and system is None:
        return _clean(structured)
    messages: list[Any] | None = None
    if structured is not None:
        if isinstance(structured, str):
            try:
                structured = _json_loads(structured)
            except (ValueError, RecursionError):
                return _clean(structured)
        messages = structured if isinstance(structured, list) else [structured]
    elif output:
        messages = (
            _indexed_messages(a, "gen_ai.completion.")
            or _event_messages(span, ("gen_ai.choice",))
            or _indexed_messages(a, "llm.output_messages.")
            or None
        )
    else:
        messages = (
            _indexed_messages(a, "gen_ai.prompt.")
            or _event_messages(span, _INPUT_EVENTS)
            or _indexed_messages(a, "llm.input_messages.")
            or None
        )
    if system is not None:
        if isinstance(system, str):
            with contextlib.suppress(ValueError, RecursionError):
                system = _json_loads(system)
        messages = [{"role": "system", "parts": system}, *(messages or [])]
    if messages is not None:
        return _clean(json.dumps(messages, ensure_ascii=False, default=str))
    raw = a.get("output.value" if output else "input.value")
    if raw is None:
        raw = a.get("gen_ai.completion" if output else "gen_ai.prompt")
    return _str(raw)


# json.loads's own scanner (typeshed does not declare the attribute).
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_loads(text: str) -> Any:
    """``json.loads(text)``: the same scanner called directly when the value spans the whole
    text (json.loads's Python wrappers cost more than the scan of a tool's arguments);
    anything else (whitespace around it, trailing data, no JSON) goes through json.loads."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _json_value(value: Any) -> tuple[Any, bool]:
    """An attribute that holds JSON text (tool arguments, input.value) as JSON, else as is;
    and whether the value is plain for a jsonb column (``rows.row``'s ``plain``)."""
    if isinstance(value, str):
        try:
            parsed = _json_loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser: text
            return _clean(value), True
        if type(parsed) is dict or type(parsed) is list:
            # Parsed from text without what could make a NUL, NaN, an infinite float or
            # deep nesting, a container holds only text, ints, finite floats, bools and None.
            plain = (
                value.count("[") + value.count("{") <= _PLAIN_JSON_BRACKETS
                and _NOT_PLAIN_JSON.search(value) is None
            )
            return parsed, plain
        return parsed, _plain(parsed)
    return value, _plain(value)


# In JSON text: a NUL escape, the NaN/Infinity literals, an exponent or a run of digits a
# float could overflow on. Any of them: the parsed value is scanned as any other.
_NOT_PLAIN_JSON: Final = re.compile(r"\\u0000|NaN|Infinity|\d[eE]|\d{300}")
_PLAIN_JSON_BRACKETS: Final = 100


def _error(span: Span, said: dict[str, Any]) -> str | None:
    if span.status_code == STATUS_ERROR:
        return _str(span.status_message) or _str(said.get("error_type")) or "error"
    return _str(span.attributes.get("error.type"))


_MAPPER_KEYS: Final = frozenset({"source", "otel"})


def _plain(value: Any) -> bool:
    """Whether a value can go into a jsonb column without rows.row's scans: None, a bool,
    an int or text without NUL (no NaN, no Infinity, no nesting, nothing to replace)."""
    cls = type(value)
    return value is None or cls is bool or cls is int or (cls is str and "\x00" not in value)


def _otel_ids(span: Span) -> dict[str, Any]:
    return {"trace_id": span.trace_hex, "span_id": span.span_hex, "parent_span_id": span.parent_hex}


def _uuid_text(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


# uuid5's variant bits (RFC 4122: 10xx) applied to the hex digit that holds them.
_VARIANT: Final = {d: "89ab"[int(d, 16) & 0x3] for d in "0123456789abcdef"}
_SPAN_SHA1: Final = hashlib.sha1(OTEL_NAMESPACE.bytes + b"span\x1f")


def _span_record_id(span: Span) -> str:
    """uuid5(trace id, span id) as text: ``_id("span", ...)`` without building a UUID
    object, once per span record (the test checks they agree)."""
    digest = _SPAN_SHA1.copy()  # the namespace and "span" prefix hashed once
    digest.update(f"{span.trace_hex}\x1f{span.span_hex}".encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_REAL: Final = (int, float)


def _llm(span: Span, said: dict[str, Any], ctx: Context, session: str) -> Row:
    prompt = _count(said, "input_tokens", "input tokens")
    response = _count(said, "output_tokens", "output tokens")
    # The counts most spans do not report are not even looked up (a call each, per span).
    total = _count(said, "total_tokens", "total tokens") if "total_tokens" in said else None
    if prompt is None and response is None and total is not None:
        prompt = total  # only a total: counted as prompt tokens (docs/otel.md)
    latency = max(0, min(INT4_MAX, (span.end_ns - span.start_ns) // 1_000_000))
    error = _error(span, said)
    fields: dict[str, Any] = {
        "id": _span_record_id(span),
        "session_id": session,
        "agent_id": ctx.agent_text,  # its text: written as is, where a UUID is formatted
        "prompt": _messages(span, output=False) or "",
        "response": _messages(span, output=True),
        "model": _fit(said.get("model") or MODEL_PLACEHOLDER, 100),
        "prompt_tokens": prompt or 0,
        "response_tokens": response or 0,
        "latency_ms": latency,
        "success": error is None,
        "error_message": error,
        "created_at": _time(span.start_ns),
    }
    # Usage details: only those the span reports (absent is not zero).
    cache_read = cache_write = reasoning = ttft = None
    if "cache_read_tokens" in said:
        cache_read = _count(said, "cache_read_tokens", "cache read tokens")
    if "cache_write_tokens" in said:
        cache_write = _count(said, "cache_write_tokens", "cache creation tokens")
    if "reasoning_tokens" in said:
        reasoning = _count(said, "reasoning_tokens", "reasoning tokens")
    ttft_s = said.get("time_to_first_chunk")
    if (
        ttft_s is not None
        and isinstance(ttft_s, _REAL)
        and type(ttft_s) is not bool
        and 0 <= ttft_s < 2e6
    ):
        ttft = min(int(ttft_s * 1000), latency)
    if cache_read is not None or cache_write is not None or reasoning is not None or ttft:
        problem = usage_problem(
            prompt_tokens=prompt or 0,
            response_tokens=response or 0,
            latency_ms=latency,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            time_to_first_token_ms=ttft,
        )
        if problem is not None:
            raise MappingError(problem)
    finish = said.get("finish_reason")
    if isinstance(finish, list):
        finish = ",".join(str(f) for f in finish) or None
    tier = said.get("service_tier")
    provider = said.get("provider")
    # Only the details the span reports, in this order.
    if cache_read is not None:
        fields["cache_read_tokens"] = cache_read
    if cache_write is not None:
        fields["cache_write_tokens"] = cache_write
    if reasoning is not None:
        fields["reasoning_tokens"] = reasoning
    if ttft is not None:
        fields["time_to_first_token_ms"] = ttft
    if provider is not None:
        fields["provider"] = _fit(provider, 100)
    if tier is not None:
        fields["service_tier"] = _fit(tier, 50)
    if finish is not None:
        fields["finish_reason"] = _fit(finish, 100)
    return row("llm_interactions", session, fields)


def _first_line(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return " ".join(line.strip() for line in lines[:3])


def _agent(span: Span, said: dict[str, Any], ctx: Context, session: str) -> list[Row]:
    assert ctx.agent_id is not None
    name = agent_name(span, said)
    failed = _error(span, said)
    otel = _otel_ids(span)
    config: dict[str, Any] = {"source": "otlp", "otel": otel}
    for key in ("gen_ai.agent.id", "gen_ai.agent.description", "gen_ai.agent.version"):
        value = span.attributes.get(key)
        if value is not None:
            config[key] = value
    model = said.get("request_model")
    if model is not None:
        config["model"] = model
    # The mapper's own values ("source", "otel") and the span's plain ones need no scan.
    config_plain = all(_plain(v) for k, v in config.items() if k not in _MAPPER_KEYS)
    provider = said.get("provider")
    started, ended = _time(span.start_ns), _time(span.end_ns)
    rows = [
        row(
            "agents",
            session,
            {
                "id": ctx.agent_text,
                "name": _fit(name, 255),
                "type": _fit(provider or "otel", 100),
                "configuration": config,
                "status": "error" if failed else "active",
                "session_id": session,
                "created_at": started,
                "updated_at": ended,
            },
            plain=config_plain,
        )
    ]
    if span.attributes.get("gen_ai.operation.name") != "create_agent":
        output = _messages(span, output=True)
        input_, input_plain = _json_value(_messages(span, output=False))
        execution: dict[str, Any] = {
            "id": _span_record_id(span),
            "agent_id": ctx.agent_text,
            "session_id": session,
            "input_data": {"input": input_, "otel": otel},
            "status": "failed" if failed else "completed",
            "started_at": started,
            "completed_at": ended,
        }
        output_plain = True
        if output is not None:
            output_value, output_plain = _json_value(output)
            execution["output_data"] = {"output": output_value}
        if failed is not None:
            execution["error_message"] = failed
        plain = input_plain and output_plain
        rows.append(row("agent_executions", session, execution, plain=plain))
    return rows


def _tool(span: Span, said: dict[str, Any], ctx: Context, session: str) -> Row:
    a = span.attributes
    arguments = a.get("gen_ai.tool.call.arguments", a.get("input.value"))
    result = a.get("gen_ai.tool.call.result", a.get("output.value"))
    error = _error(span, said)
    tool = _str(said.get("tool_name")) or span.name.removeprefix("execute_tool ")
    arguments, arguments_plain = _json_value(arguments)
    result, result_plain = _json_value(result)
    payload = {
        "tool": tool,
        "arguments": arguments,
        "result": result,
        "call_id": _str(a.get("gen_ai.tool.call.id")),
        "duration_ms": max(0, (span.end_ns - span.start_ns) // 1_000_000),
        "success": error is None,
        "error": error,
        "agent_id": ctx.agent_text,
        "otel": _otel_ids(span),
    }
    plain = arguments_plain and result_plain and "\x00" not in tool
    return _event(span, ctx, session, "tool.call", payload, plain=plain)


def _event(
    span: Span,
    ctx: Context,
    session: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    plain: bool = False,
) -> Row:
    fields = {
        "id": _span_record_id(span),
        "event_type": event_type,
        "trace_id": _uuid_text(span.trace_hex),
        "session_id": session,
        "user_id": _fit(ctx.user_id, 255),
        "timestamp_ms": max(0, span.start_ns // 1_000_000),
        "payload": payload,
        "created_at": _time(span.start_ns),
    }
    return row("events", session, fields, plain=plain)


def _other(span: Span, said: dict[str, Any], ctx: Context, session: str) -> Row:
    payload = {
        "name": _clean(span.name),
        "attributes": span.attributes,
        "duration_ms": max(0, (span.end_ns - span.start_ns) // 1_000_000),
        "error": _error(span, said),
        "otel": _otel_ids(span),
    }
    return _event(span, ctx, session, "otel.span", payload)


def session_record(ctx: Context, start_ns: int, end_ns: int) -> Row:
    """A session as the spans mapped together know it (sessions are upserted, latest wins)."""
    session = ctx.session_text
    fields = {
        "id": session,
        "user_id": _fit(ctx.user_id, 255),
        "created_at": _time(start_ns),
        "updated_at": _time(end_ns),
        "metadata": {"source": "otlp", "otel.session": _clean(ctx.session_key)},
    }
    return row("sessions", session, fields, plain=True)


def records_of(
    span: Span, kind: SpanKind, ctx: Context, said: dict[str, Any] | None = None
) -> list[Row]:
    """The records of a span whose context is known; raises MappingError for a refused span.
    ``said``: ``read(span)``, if already read."""
    if said is None:
        said = read(span)
    session = ctx.session_text
    try:
        if kind == "llm":
            return [_llm(span, said, ctx, session)]
        if kind == "agent":
            return _agent(span, said, ctx, session)
        if kind == "tool":
            return [_tool(span, said, ctx, session)]
        return [_other(span, said, ctx, session)]
    except MappingError:
        raise
    except ValueError as exc:  # RowRefused: the record would break the entity contract
        raise MappingError(_first_line(exc)) from None
