"""The six entities of the seed schema as pydantic v2 models: the one home of the record contract.

Every layer validates with these models: the SDK before it publishes, the stream processors
before they write, the dead-letter replay before it re-publishes. They accept what the
seed's PostgreSQL schema accepts and reject, with a message naming the field, what it would
refuse (over-long varchar, NUL characters, lone surrogates, out-of-range integers) or what
would be silently wrong (naive timestamps, strings where numbers belong, unknown fields).

Field names are the seed's column names. Optional fields follow the schema's defaults:

* a column with a constant default (``metadata '{}'``, ``status 'inactive'``, tokens ``0`` …)
  takes it when the field is omitted or null;
* ``id`` (``gen_random_uuid()``) and the ``NOW()`` timestamps are left ``None`` here and
  filled at ingest (see :meth:`Record.with_ingest_defaults`): a deterministic id derived
  from the record's Kafka coordinates, and the Kafka record's timestamp. That keeps replays
  idempotent, which a random id or the time of the write would not.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo

__all__ = [
    "AGENT_STATUSES",
    "ENTITY_MODELS",
    "EXECUTION_STATUSES",
    "EXECUTION_STATUS_RANK",
    "Agent",
    "AgentExecution",
    "AgentStatus",
    "Document",
    "Entity",
    "Event",
    "ExecutionStatus",
    "LLMInteraction",
    "Record",
    "Session",
    "usage_problem",
]

# Namespace of the ids derived for records sent without one (uuid5 of their Kafka coordinates).
INGEST_ID_NAMESPACE = uuid.UUID("6d1c8f0e-2b7a-5c3e-9f41-a9e0b7c4d2f1")
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
# The JSON parser refuses a message nested deeper than 200 levels; records built in Python
# (the SDK) are held to the same bound, counted from the jsonb value.
MAX_JSON_DEPTH = 200
# Python's datetime spans years 1-9999; a row outside that could not be read back.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)

# Validation context set by the codec when a pre-scan of the raw message bytes proved that
# no string in it holds NUL and no number is NaN, Infinity or out of float range: the
# jsonb walker below then has nothing to find, and is skipped (it is most of the cost of
# validating a record). Everything else is checked natively by pydantic-core, in Rust.
PRESCANNED = {"agentstream.prescanned": True}

_NUL_IN_TEXT = "contains a NUL character (\\u0000), which PostgreSQL text cannot store"


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000), which PostgreSQL jsonb refuses")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError("has a key with a NUL character (\\u0000)")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds a non-finite number (NaN or Infinity), which JSON cannot carry")


class _Kind:
    """Marks a field for the one record-level check below (one Python call per record)."""

    def __init__(self, name: str) -> None:
        self.name = name


_TEXT, _JSON = _Kind("text"), _Kind("json")


def _has(info: FieldInfo, kind: _Kind) -> bool:
    """Is the field marked ``kind``, directly or inside ``X | None``?"""
    metadata = list(info.metadata)
    for arg in get_args(info.annotation):
        metadata.extend(getattr(arg, "__metadata__", ()))
    return any(m is kind for m in metadata)


def _null_is_default(default: Any) -> BeforeValidator:
    """A column with a default takes it when the field is null, as when it is omitted."""
    return BeforeValidator(lambda v: default if v is None else v)


Text = Annotated[str, Field(strict=True), _TEXT]
# VARCHAR(n): PostgreSQL counts characters (code points in a UTF-8 database), as len() does.
# Lone surrogates (not UTF-8) are refused by pydantic-core's own string validation.
Varchar50 = Annotated[str, Field(strict=True, max_length=50), _TEXT]
Varchar100 = Annotated[str, Field(strict=True, max_length=100), _TEXT]
Varchar255 = Annotated[str, Field(strict=True, max_length=255), _TEXT]
Varchar500 = Annotated[str, Field(strict=True, max_length=500), _TEXT]

Int4 = Annotated[StrictInt, Field(ge=0, le=INT4_MAX)]
Int8 = Annotated[StrictInt, Field(ge=0, le=INT8_MAX)]
Json = Annotated[JsonValue, _JSON]
JsonObject = Annotated[dict[str, JsonValue], _JSON]
# With an offset (naive ones would be read in the server's zone). Strict: an RFC 3339
# string on the wire (never a number), a datetime in Python.
# The range is checked by pydantic-core (Rust) while parsing: a Python check per record cost
# about a fifth of decoding an event.
TimestampTz = Annotated[AwareDatetime, Field(strict=True, ge=_EARLIEST, le=_LATEST)]

AgentStatus = Literal["inactive", "active", "idle", "busy", "paused", "error", "terminated"]
ExecutionStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
AGENT_STATUSES: tuple[str, ...] = get_args(AgentStatus)
EXECUTION_STATUSES: tuple[str, ...] = get_args(ExecutionStatus)
# Executions move pending < running < completed | failed | cancelled; a later stage wins.
EXECUTION_STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "running": 1,
    "completed": 2,
    "failed": 2,
    "cancelled": 2,
}


class Record(BaseModel):
    """Common configuration: unknown fields are errors, records are immutable values."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    id: uuid.UUID | None = None

    # Columns whose schema default is NOW(); filled with the ingest time when omitted.
    NOW_FIELDS: ClassVar[tuple[str, ...]] = ("created_at",)

    # Fields that are not columns of the seed table: they are written to a table of their
    # own (see LLMInteraction). Every other field is a column of the entity's seed table.
    DETAIL_FIELDS: ClassVar[tuple[str, ...]] = ()

    # Filled per model from the field markers: what _postgres_safe checks.
    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ()
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)

        def marked(kind: _Kind) -> tuple[str, ...]:
            return tuple(name for name, info in cls.model_fields.items() if _has(info, kind))

        cls.TEXT_FIELDS, cls.JSON_FIELDS = marked(_TEXT), marked(_JSON)

    @model_validator(mode="after")
    def _postgres_safe(self, info: ValidationInfo) -> Self:
        """What PostgreSQL would refuse, checked once per record rather than once per field.

        Text and jsonb must not hold NUL, jsonb not NaN or Infinity, nor nest deeper than
        MAX_JSON_DEPTH. The walk is skipped for a message the codec pre-scanned
        (PRESCANNED): it cannot find anything. (Timestamps' range: see TimestampTz.)
        """
        context = info.context
        if context is PRESCANNED or (context is not None and PRESCANNED.keys() <= context.keys()):
            return self
        for name in self.TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and "\x00" in value:
                raise ValueError(f"{name}: {_NUL_IN_TEXT}")
        for name in self.JSON_FIELDS:
            try:
                _check_json(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The seed table's columns, in the model's field order."""
        return tuple(n for n in cls.model_fields if n not in cls.DETAIL_FIELDS)

    def has_details(self) -> bool:
        """Whether any detail field is set: a record without details writes no details row."""
        d = self.__dict__
        return any(d[n] is not None for n in self.DETAIL_FIELDS)

    def with_ingest_defaults(self, *, id_key: str, ingest_time: datetime) -> Record:
        """Fill the defaults the database would compute, deterministically.

        ``id_key`` names the record's place in Kafka (topic/partition/offset/index): the id
        derived from it is the same on every replay, so an id-less record lands once.
        """
        update: dict[str, Any] = {}
        if self.id is None:
            update["id"] = uuid.uuid5(INGEST_ID_NAMESPACE, id_key)
        for name in self.NOW_FIELDS:
            if getattr(self, name) is None:
                update[name] = ingest_time
        return self.model_copy(update=update) if update else self


class Session(Record):
    """Primary context boundary for all user interactions (table ``sessions``)."""

    NOW_FIELDS = ("created_at", "updated_at")

    user_id: Varchar255
    created_at: TimestampTz | None = None
    updated_at: TimestampTz | None = None
    metadata: Annotated[JsonObject, _null_is_default({})] = Field(default_factory=dict)


class Event(Record):
    """Universal event storage (table ``events``); immutable."""

    event_type: Varchar100
    trace_id: uuid.UUID
    session_id: uuid.UUID
    user_id: Varchar255
    timestamp_ms: Int8
    payload: Annotated[Json, AfterValidator(lambda v: _not_null(v, "payload"))]
    created_at: TimestampTz | None = None


def _not_null(value: Any, name: str) -> Any:
    if value is None:
        raise ValueError("must not be null (the column is NOT NULL)")
    return value


class Agent(Record):
    """An agent in the orchestration system (table ``agents``); latest ``updated_at`` wins."""

    NOW_FIELDS = ("created_at", "updated_at")

    name: Varchar255
    type: Varchar100
    configuration: Annotated[JsonObject, _null_is_default({})] = Field(default_factory=dict)
    status: Annotated[AgentStatus, _null_is_default("inactive")] = "inactive"
    session_id: uuid.UUID
    created_at: TimestampTz | None = None
    updated_at: TimestampTz | None = None


class AgentExecution(Record):
    """One execution of an agent (table ``agent_executions``); later lifecycle stage wins."""

    NOW_FIELDS = ("started_at",)

    agent_id: uuid.UUID
    session_id: uuid.UUID
    input_data: Annotated[Json, AfterValidator(lambda v: _not_null(v, "input_data"))]
    output_data: Json = None
    status: Annotated[ExecutionStatus, _null_is_default("pending")] = "pending"
    started_at: TimestampTz | None = None
    completed_at: TimestampTz | None = None
    error_message: Text | None = None


def usage_problem(
    *,
    prompt_tokens: int,
    response_tokens: int,
    latency_ms: int,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    time_to_first_token_ms: int | None = None,
) -> str | None:
    """The first rule an LLM call's usage breaks, or None: the one home of these rules (the
    model validates with it, the SDK checks with it when a call is recorded).

    The counts mean what OpenTelemetry's GenAI conventions mean: cache reads and writes are
    part of ``prompt_tokens`` (gen_ai.usage.cache_read/cache_creation.input_tokens), reasoning
    tokens part of ``response_tokens`` (gen_ai.usage.reasoning.output_tokens). A record that
    says otherwise would be billed twice for the same tokens, so it is refused, not fixed.
    """
    cached = (cache_read_tokens or 0) + (cache_write_tokens or 0)
    if cached > prompt_tokens:
        return (
            f"cache_read_tokens + cache_write_tokens ({cached}) exceed prompt_tokens "
            f"({prompt_tokens}): cached tokens are counted within prompt_tokens"
        )
    if reasoning_tokens is not None and reasoning_tokens > response_tokens:
        return (
            f"reasoning_tokens ({reasoning_tokens}) exceed response_tokens ({response_tokens}): "
            "reasoning tokens are counted within response_tokens"
        )
    if time_to_first_token_ms is not None and time_to_first_token_ms > latency_ms:
        return (
            f"time_to_first_token_ms ({time_to_first_token_ms}) exceeds latency_ms "
            f"({latency_ms}): the first token cannot come after the call ended"
        )
    return None


class LLMInteraction(Record):
    """One LLM API call (table ``llm_interactions``); immutable.

    The usage details (``DETAIL_FIELDS``: cache and reasoning tokens, time to first token,
    provider, service tier, finish reason) are optional and not columns of the seed table:
    they go to ``agentstream.llm_usage``, keyed by the interaction's id, in the same
    transaction and by the same first-write-wins rule (docs/design.md).
    """

    DETAIL_FIELDS = (
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "time_to_first_token_ms",
        "provider",
        "service_tier",
        "finish_reason",
    )

    session_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    prompt: Text
    response: Text | None = None
    model: Varchar100
    prompt_tokens: Annotated[Int4, _null_is_default(0)] = 0
    response_tokens: Annotated[Int4, _null_is_default(0)] = 0
    latency_ms: Annotated[Int4, _null_is_default(0)] = 0
    success: Annotated[StrictBool, _null_is_default(False)] = False
    error_message: Text | None = None
    created_at: TimestampTz | None = None
    # Usage details (absent: not reported; never read as zero by a rule that needs them).
    cache_read_tokens: Int4 | None = None
    cache_write_tokens: Int4 | None = None
    reasoning_tokens: Int4 | None = None
    time_to_first_token_ms: Int4 | None = None
    provider: Varchar100 | None = None
    # Lower-case names as the providers spell them (default, flex, priority, batch, ...);
    # the price table says which tiers it prices.
    service_tier: Varchar50 | None = None
    finish_reason: Varchar100 | None = None

    @model_validator(mode="after")
    def _usage_consistent(self) -> Self:
        if not self.has_details():
            return self
        problem = usage_problem(
            prompt_tokens=self.prompt_tokens,
            response_tokens=self.response_tokens,
            latency_ms=self.latency_ms,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
            time_to_first_token_ms=self.time_to_first_token_ms,
        )
        if problem is not None:
            raise ValueError(problem)
        return self


class Document(Record):
    """A document retrieved or produced by an agent (table ``documents``); immutable."""

    session_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    title: Varchar500
    content: Text
    content_type: Annotated[Varchar100, _null_is_default("text/plain")] = "text/plain"
    source_url: Text | None = None
    metadata: Annotated[JsonObject, _null_is_default({})] = Field(default_factory=dict)
    created_at: TimestampTz | None = None


Entity: TypeAlias = Literal[
    "sessions", "agents", "agent_executions", "llm_interactions", "events", "documents"
]

# Parents before children: the order in which a flush writes the tables.
ENTITY_MODELS: dict[str, type[Record]] = {
    "sessions": Session,
    "agents": Agent,
    "agent_executions": AgentExecution,
    "llm_interactions": LLMInteraction,
    "events": Event,
    "documents": Document,
}
