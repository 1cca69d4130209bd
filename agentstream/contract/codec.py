"""The wire codec: a Kafka message value is UTF-8 JSON, one record (object) or a batch (array).

Decoding validates with the entity models and splits a message into the records that are
valid and the ones that are not, each invalid one with a reason that names the field and its
index in the batch. One bad record never takes its neighbours down with it.

The fast path validates a whole batch in one call into pydantic-core (parsing and validation
in Rust); only when that fails is the batch re-validated record by record to isolate the
bad ones, so the common, all-valid case pays no per-record Python overhead.

This is the reference decoder. The worker decodes with msgspec first
(agentstream/streams/fastdecode.py, straight into rows) and comes here for every message
that one is not sure of, so every rejection is worded here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from agentstream.contract.deadletter import ErrorKind
from agentstream.contract.entities import ENTITY_MODELS, PRESCANNED, Record

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Decoded",
    "InvalidRecord",
    "decode",
    "describe_error",
    "encode_batch",
    "encode_record",
    "needs_walk",
]

# A message larger than this is refused before parsing. Kafka's own default limit is 1 MiB;
# our brokers allow 10 MiB and the SDK cuts batches far below that.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record (or a whole message, ``index is None``) that failed decoding or validation."""

    index: int | None
    reason: str
    raw: bytes
    kind: ErrorKind = ErrorKind.DECODE  # VALIDATION: JSON records that break the contract


@dataclass(slots=True)
class Decoded:
    """The outcome of decoding one message: valid records with their batch index, and the rest."""

    records: list[tuple[int, Record]] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)
    is_batch: bool = False


# What the jsonb walker looks for, as it appears in raw JSON: an escaped NUL and the NaN
# and Infinity literals. A message without them skips the walker (see PRESCANNED); one
# with them (or with a false alarm, the word NaN in a string) takes the full check. Plain
# substring tests run at memory speed; a regular expression here cost more than parsing.
# A number too large for a float (1e400) parses as infinity and is not caught here: the
# sink serialises it as the literal Infinity, which PostgreSQL refuses, and that record
# is dead-lettered with the database's reason. Records built in Python are walked in full.
_WALK_MARKERS = (b"\\u0000", b"NaN", b"Infinity")


def needs_walk(value: bytes) -> bool:
    """Whether a record's JSON may hold what only the jsonb walker finds (NUL, NaN, ...)."""
    nul, nan, inf = _WALK_MARKERS  # unrolled: a generator here cost more than the scans
    return nul in value or nan in value or inf in value


def _prescanned(value: bytes) -> dict[str, bool] | None:
    return None if needs_walk(value) else PRESCANNED


_LIST_ADAPTERS: dict[str, TypeAdapter[list[Record]]] = {
    entity: TypeAdapter(list[model])  # type: ignore[valid-type]
    for entity, model in ENTITY_MODELS.items()
}


def describe_error(exc: ValidationError, *, skip_index: bool = False) -> str:
    """One line naming each offending field, without echoing the input (it may be a prompt)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        if skip_index and loc and isinstance(loc[0], int):
            loc = loc[1:]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "timezone_aware":
            message = "must carry a UTC offset (RFC 3339, e.g. 2026-11-26T16:00:00Z)"
        # Record-level checks (loc empty) name their field at the start of the message.
        parts.append(f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message)
    return "; ".join(parts)


def _first_char(value: bytes) -> int:
    for byte in value:
        if byte not in b" \t\r\n":
            return byte
    return 0


def decode(entity: str, value: bytes | None) -> Decoded:
    """Decode and validate one message value of ``entity``'s topic.

    Never raises for bad input: every problem becomes an :class:`InvalidRecord`.
    """
    model = ENTITY_MODELS[entity]
    out = Decoded()
    if value is None or len(value) == 0:
        out.invalid.append(
            InvalidRecord(None, "empty message: expected a JSON object or array", b"")
        )
        return out
    if len(value) > MAX_MESSAGE_BYTES:
        out.invalid.append(
            InvalidRecord(
                None,
                f"message of {len(value)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
                value,
            )
        )
        return out
    context = _prescanned(value)
    first = _first_char(value)
    if first == ord("["):
        out.is_batch = True
        try:
            batch = _LIST_ADAPTERS[entity].validate_json(value, context=context)
        except ValidationError:
            _decode_batch_slowly(model, value, out, context)
        else:
            if not batch:
                out.invalid.append(
                    InvalidRecord(None, "empty batch: an array with no records", value)
                )
            out.records.extend(enumerate(batch))
        return out
    if first != ord("{"):
        try:
            parsed = pydantic_core.from_json(value)
        except ValueError as exc:
            reason = f"not valid JSON: {exc}"
        else:
            reason = f"expected a JSON object or array of {entity}, got {_json_type(parsed)}"
        out.invalid.append(InvalidRecord(None, reason, value))
        return out
    try:
        out.records.append((0, model.model_validate_json(value, context=context)))
    except ValidationError as exc:
        reason, kind = _reason(exc)
        out.invalid.append(InvalidRecord(None, reason, value, kind))
    return out


def _reason(exc: ValidationError, *, skip_index: bool = False) -> tuple[str, ErrorKind]:
    """Why, in words, and the kind of problem: JSON that does not parse, or a broken rule."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return (
            f"not valid JSON: {errors[0]['msg'].removeprefix('Invalid JSON: ')}",
            ErrorKind.DECODE,
        )
    return f"invalid record: {describe_error(exc, skip_index=skip_index)}", ErrorKind.VALIDATION


def _decode_batch_slowly(
    model: type[Record], value: bytes, out: Decoded, context: dict[str, bool] | None
) -> None:
    try:
        items = pydantic_core.from_json(value)
    except ValueError as exc:
        out.invalid.append(InvalidRecord(None, f"not valid JSON: {exc}", value))
        return
    if not isinstance(items, list):  # pragma: no cover - first byte was '['
        out.invalid.append(InvalidRecord(None, "expected a JSON array", value))
        return
    for index, item in enumerate(items):
        raw = pydantic_core.to_json(item)
        if not isinstance(item, dict):
            reason = f"batch item must be a JSON object, got {_json_type(item)}"
            out.invalid.append(InvalidRecord(index, reason, raw))
            continue
        try:
            # Validated from its JSON text so that a batch item is held to exactly the
            # rules of a single-record message (JSON mode, not Python-object mode).
            out.records.append((index, model.model_validate_json(raw, context=context)))
        except ValidationError as exc:
            reason, kind = _reason(exc)
            out.invalid.append(InvalidRecord(index, reason, raw, kind))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def encode_record(record: Record) -> bytes:
    """One record as a single-record message value (omitted fields stay omitted)."""
    return record.model_dump_json(exclude_none=False, exclude_unset=True).encode()


def encode_batch(records: Sequence[Record] | Iterable[Record]) -> bytes:
    """Several records of one entity as a batch message value."""
    return b"[" + b",".join(encode_record(r) for r in records) + b"]"
