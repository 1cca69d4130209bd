"""A corpus of hostile and malformed messages, each with what must become of it.

Every case is one Kafka message value for one entity's topic, with the number of records
in it that must be written and the number that must be dead-lettered. Valid records carry
fresh ids so a test can find them in PostgreSQL. Used by the codec tests (pure) and the
fault suite (through the real worker, broker and database).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    entity: str
    value: bytes
    valid: int  # records in it that must land in PostgreSQL
    invalid: int  # records (or the whole message, counted as 1) that must be dead-lettered
    headers: tuple[tuple[str, bytes], ...] = ()
    valid_ids: tuple[str, ...] = field(default=())
    # Where the invalid records are caught: by the codec, or only by PostgreSQL (the worker
    # then dead-letters them with the database's reason).
    caught_by: str = "decode"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def session(**over: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "user_id": "corpus-user", "created_at": _now(), **over}


def event(**over: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "event_type": "corpus.event",
        "trace_id": str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "user_id": "corpus-user",
        "timestamp_ms": 1_764_172_800_000,
        "payload": {"k": "v"},
        **over,
    }


def llm(**over: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "prompt": "hello",
        "model": "gpt-4o",
        "prompt_tokens": 10,
        "response_tokens": 20,
        **over,
    }


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _case(name: str, entity: str, records: list[dict[str, Any]], bad: int, **kw: Any) -> Case:
    """A message whose records are all listed; ``bad`` of them must be dead-lettered."""
    value = _j(records if len(records) != 1 or kw.pop("batch", False) else records[0])
    good = tuple(r["id"] for r in records if r.get("_good", True))
    return Case(name, entity, value, len(records) - bad, bad, valid_ids=good, **kw)


def _bad(**over: Any) -> dict[str, Any]:
    return {**over, "_good": False}


def build_corpus() -> list[Case]:
    """A new corpus (fresh ids every call)."""
    nest: Any = "leaf"
    for _ in range(250):
        nest = {"n": nest}
    deeper = b'{"a":' * 300 + b"1" + b"}" * 300
    ok = session()
    cases = [
        Case("not json", "sessions", b"hello world", 0, 1),
        Case("truncated json", "sessions", _j(session())[:-7], 0, 1),
        Case("invalid utf-8", "sessions", b'{"user_id": "\xff\xfe\xfd"}', 0, 1),
        Case("top-level number", "sessions", b"42", 0, 1),
        Case("top-level string", "sessions", b'"a string"', 0, 1),
        Case("top-level null", "sessions", b"null", 0, 1),
        Case("top-level boolean", "sessions", b"true", 0, 1),
        Case("empty message", "sessions", b"", 0, 1),
        Case("whitespace only", "sessions", b"   \n ", 0, 1),
        Case("byte order mark", "sessions", b"\xef\xbb\xbf" + _j(session()), 0, 1),
        Case("trailing garbage", "sessions", _j(session()) + b" trailing", 0, 1),
        Case("trailing comma", "sessions", b'{"user_id": "a",}', 0, 1),
        Case("oversized message", "sessions", b'{"user_id": "' + b"x" * (9 << 20) + b'"}', 0, 1),
        Case("deep nesting beyond the parser", "events", deeper, 0, 1),
        Case("empty batch", "sessions", b"[]", 0, 1),
        _case("nul in text", "sessions", [_bad(**session(user_id="a\x00b"))], 1),
        _case("nul in jsonb value", "events", [_bad(**event(payload={"x": "\x00"}))], 1),
        _case("nul in jsonb key", "sessions", [_bad(**session(metadata={"\x00k": 1}))], 1),
        Case("lone surrogate", "sessions", b'{"user_id": "\\udc00"}', 0, 1),
        _case("deep nesting in jsonb", "events", [_bad(**event(payload=nest))], 1),
        _case("bigint out of range", "events", [_bad(**event(timestamp_ms=2**64))], 1),
        _case("integer out of range", "llm_interactions", [_bad(**llm(prompt_tokens=2**31))], 1),
        _case("negative tokens", "llm_interactions", [_bad(**llm(response_tokens=-1))], 1),
        _case("float for integer", "llm_interactions", [_bad(**llm(latency_ms=12.5))], 1),
        _case("string for integer", "events", [_bad(**event(timestamp_ms="17"))], 1),
        _case("boolean for string", "sessions", [_bad(**session(user_id=True))], 1),
        _case(
            "timestamp year 10000",
            "sessions",
            [_bad(**session(created_at="10000-01-01T00:00:00Z"))],
            1,
        ),
        _case(
            "naive timestamp", "sessions", [_bad(**session(created_at="2026-01-01T00:00:00"))], 1
        ),
        _case("garbage timestamp", "sessions", [_bad(**session(updated_at="soon"))], 1),
        _case("epoch number timestamp", "sessions", [_bad(**session(created_at=1764172800))], 1),
        _case("bad uuid", "events", [_bad(**event(trace_id="not-a-uuid"))], 1),
        _case("uuid as number", "sessions", [_bad(**session(id=12345))], 1),
        _case("unknown field", "sessions", [_bad(**session(colour="red"))], 1),
        _case(
            "missing required field",
            "events",
            [_bad(**{k: v for k, v in event().items() if k != "payload"})],
            1,
        ),
        _case("null for not-null jsonb", "events", [_bad(**event(payload=None))], 1),
        _case("over-long varchar", "sessions", [_bad(**session(user_id="u" * 256))], 1),
        _case(
            "status outside the enum",
            "agents",
            [
                _bad(
                    id=str(uuid.uuid4()),
                    name="a",
                    type="t",
                    session_id=str(uuid.uuid4()),
                    status="asleep",
                )
            ],
            1,
        ),
        _case("array where an object belongs", "sessions", [_bad(**session(metadata=[1, 2]))], 1),
        Case("nan in jsonb", "events", _j(event()).replace(b'{"k": "v"}', b'{"k": NaN}'), 0, 1),
        Case(
            "huge number in jsonb",
            "events",
            _j(event()).replace(b'{"k": "v"}', b'{"k": 1e400}'),
            0,
            1,
            caught_by="database",
        ),
        Case("batch with a null item", "sessions", _j([ok, None]), 1, 1, valid_ids=(ok["id"],)),
        Case("batch nested in a batch", "sessions", _j([[session()]]), 0, 1),
        _case("batch of the wrong entity", "sessions", [_bad(**event()), _bad(**event())], 2),
        _case(
            "mixed batch",
            "events",
            [event(), _bad(**event(trace_id="x")), event(), _bad(**event(user_id=None)), event()],
            2,
        ),
        # Hostile but valid: stored verbatim, harmlessly.
        _case(
            "sql injection strings",
            "sessions",
            [session(user_id="'); DROP TABLE sessions; --", metadata={"q": "1' OR '1'='1"})],
            0,
        ),
        _case(
            "control characters and emoji",
            "llm_interactions",
            [llm(prompt="tab\tnew\nline 🧠 \u202e rtl", response="\x01\x1f")],
            0,
        ),
        _case("a 1 MiB prompt", "llm_interactions", [llm(prompt="p" * (1 << 20))], 0),
        _case(
            "garbage headers",
            "sessions",
            [session()],
            0,
            headers=(("\x00weird", b"\xff\x00\xfe"), ("", b"")),
        ),
        _case("duplicate keys (last wins, as in JSON parsers)", "sessions", [session()], 0),
        _case("a batch of 2000 valid records", "events", [event() for _ in range(2000)], 0),
    ]
    # _case drops the helper key before the value is built; do it for the JSON as well.
    return [_strip(c) for c in cases]


def _strip(case: Case) -> Case:
    if b'"_good"' not in case.value:
        return case
    parsed = json.loads(case.value)
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        if isinstance(item, dict):
            item.pop("_good", None)
    value = json.dumps(parsed).encode()
    return Case(
        case.name, case.entity, value, case.valid, case.invalid, case.headers, case.valid_ids
    )
