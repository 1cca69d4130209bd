"""The worker's fast decoder (msgspec, streams/fastdecode.py) against the contract's own (pydantic).

Every message is decoded both ways by ``processor.decode_items``, the function the worker
runs: with the fast path (msgspec, falling back to pydantic where it is not sure) and with
the reference alone (``fast=False``). They must agree on everything: which records are
written and with which rows (binary COPY, byte for byte, details rows included), which are
dead-lettered with which kind, reason and value. jsonb is compared after putting it in the
form the reference writes (pydantic-core's serialisation): the fast path passes the
producer's JSON text through, and where that text already is in that form (as the SDK
writes it) the rows are compared as they are.

On the hostile corpus, and on records generated from the models' JSON Schema (hypothesis),
single-record messages and arrays. The tests load the column types from a migrated database.
"""

from __future__ import annotations

import json
import re
import string
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Self

import msgspec
import psycopg
import pydantic_core
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationInfo, field_validator, model_validator

from agentstream.contract.codec import MAX_MESSAGE_BYTES, decode
from agentstream.contract.entities import ENTITY_MODELS, Record, Session
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.sinks.postgres import PostgresSink, RowSource, Source
from agentstream.sinks.postgres.copy import RowEncoder, sink_adapters
from agentstream.sinks.postgres.tables import Table, load_tables
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.fastdecode import (
    WIRE_TYPES,
    decode_object_run,
    decode_wire,
    derive_struct,
    joinable,
    joinable_prefix,
)
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Prepared, Processor, decode_items
from tests.support.corpus import build_corpus
from tests.support.services import Services

pytestmark = pytest.mark.integration

INGEST_TIME = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CORPUS = build_corpus()


@pytest.fixture(scope="module")
def tables(services: Services, migrated_template: str) -> dict[str, Table]:
    # Read the catalog and disconnect at once: the template is cloned by other tests.
    with psycopg.connect(services.conninfo(migrated_template)) as conn:
        return load_tables(conn)


class Outcome:
    """What the worker makes of one message: rows (jsonb canonical) and dead letters."""

    def __init__(self, tables: dict[str, Table], entity: str, value: bytes, *, fast: bool):
        table = tables[entity]
        adapters = sink_adapters()
        encode = RowEncoder(table, adapters)
        details = RowEncoder(table.details, adapters) if table.details else None
        source = Source("t", 3, 17, value)
        items, invalid = decode_items(entity, source, INGEST_TIME, encode, fast=fast)
        self.raw_rows: list[tuple[int | None, bytes | None, bytes | None]] = []
        for item in items:
            detail = details(item.record) if details and item.record.has_details() else None
            self.raw_rows.append((item.index, item.row, detail))
        self.rows = [
            (index, _canonical(row, table), detail and _canonical(detail, table.details))
            for index, row, detail in self.raw_rows
        ]
        self.records: list[RowSource] = [i.record for i in items]
        self.dead = [(bad.index, bad.kind, bad.reason, bad.raw) for bad in invalid]


def _fields(row: bytes) -> Iterator[bytes | None]:
    (count,) = struct.unpack_from("!h", row)
    at = 2
    for _ in range(count):
        (size,) = struct.unpack_from("!i", row, at)
        at += 4
        if size < 0:
            yield None
            continue
        yield row[at : at + size]
        at += size
    assert at == len(row)


def _canonical(row: bytes | None, table: Table | None) -> bytes | None:
    """``row`` with every jsonb value re-serialised as the reference serialises it."""
    if row is None or table is None:
        return row
    out = bytearray(row[:2])
    for kind, value in zip(table.types, _fields(row), strict=True):
        if value is not None and kind == "jsonb":
            assert value[:1] == b"\x01"
            value = b"\x01" + pydantic_core.to_json(pydantic_core.from_json(value[1:]))
        out += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return bytes(out)


def _agree(tables: dict[str, Table], entity: str, value: bytes) -> tuple[Outcome, bool]:
    """Both ways agree on ``value``; returns the fast outcome and whether msgspec took it."""
    fast = Outcome(tables, entity, value, fast=True)
    reference = Outcome(tables, entity, value, fast=False)
    assert fast.dead == reference.dead
    assert fast.rows == reference.rows
    assert len(fast.rows) == len(reference.rows)
    for mine, theirs in zip(fast.records, reference.records, strict=True):
        assert mine.id == theirs.id
        assert mine.has_details() == theirs.has_details()
    return fast, decode_wire(entity, value) is not None


# --- the hostile corpus -----------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_case_decodes_the_same_both_ways(tables: dict[str, Table], case: Any) -> None:
    _, took_fast = _agree(tables, case.entity, case.value)
    if case.invalid == 0:
        # Every valid message of the corpus is one the fast path is sure of: no test here
        # passes only because msgspec gave up.
        assert took_fast, case.name
    else:
        assert not took_fast, case.name


# --- generated records --------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "a\x00b", "NaN", "é", "😀", "\\u0000", "line\nbreak", "\u2028"]
)
_JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e300, 1e-300, 0.1, -0.0, 2**53 + 1])
    | _TEXT
)
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _uuid() -> st.SearchStrategy[Any]:
    def spell(u: uuid.UUID, how: int) -> Any:
        return [str(u), u.hex, str(u).upper(), f"{{{u}}}", f"urn:uuid:{u}", str(u)[:-1], 7][how]

    return st.builds(spell, st.uuids(), st.sampled_from([0] * 12 + [1, 2, 3, 4, 5, 6]))


def _timestamp() -> st.SearchStrategy[Any]:
    def spell(moment: datetime, fraction: int, zone: str, sep: str) -> Any:
        text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        if fraction:
            text += "." + f"{moment.microsecond:06d}{moment.microsecond % 997:03d}"[:fraction]
        return text + zone

    moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
    zones = st.sampled_from(["Z", "+00:00", "-05:30", "+14:00"] * 4 + ["", "z", "+0100", "+24:00"])
    fractions = st.sampled_from([0, 0, 1, 3, 6, 6, 6, 6, 6, 6, 7, 9])
    spelled = st.builds(spell, moments, fractions, zones, st.sampled_from(["T"] * 5 + [" "]))
    odd = st.sampled_from([0, "soon", "2026-02-30T00:00:00Z", "2026-01-01T00:00Z"])
    return st.integers(0, 19).flatmap(lambda n: odd if n == 0 else spelled)


def _value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value for a JSON Schema property: mostly valid, now and then just outside the rules."""
    options = prop.get("anyOf", [prop])
    valid: list[st.SearchStrategy[Any]] = []
    off: list[st.SearchStrategy[Any]] = []
    if any(o.get("type") == "null" for o in options):
        valid.append(st.none())
    for option in options:
        kind, fmt = option.get("type"), option.get("format")
        if "enum" in option:
            valid.append(st.sampled_from(option["enum"]))
            off.append(st.sampled_from(["other", None, 1]))
        elif fmt == "uuid":
            valid.append(_uuid())
        elif fmt == "date-time":
            valid.append(_timestamp())
        elif kind == "string":
            limit = option.get("maxLength", 300)
            valid.append(_TEXT | st.integers(max(0, limit - 2), limit).map(lambda n: "é" * n))
            off.append(st.sampled_from(["é" * (limit + 1), 3, None, True]))
        elif kind == "integer":
            low, high = option.get("minimum", 0), option.get("maximum", 2**63 - 1)
            valid.append(st.integers(low, min(high, 10_000)) | st.just(high) | st.none())
            off.append(st.sampled_from([high + 1, -1, 1.0, "3", 2**64]))
        elif kind == "boolean":
            valid.append(st.booleans() | st.none())
            off.append(st.sampled_from([0, "true"]))
        elif kind == "object":
            valid.append(st.dictionaries(_TEXT, _JSON, max_size=3) | st.none())
            off.append(_JSON)
        elif kind is None and option.get("$ref", "").endswith("JsonValue"):
            valid.append(_JSON)
    assert valid, prop
    good = st.one_of(valid)
    if not off:
        return good
    bad = st.one_of(off)
    return st.integers(0, 19).flatmap(lambda n: bad if n == 0 else good)


def _record(entity: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = ENTITY_MODELS[entity].model_json_schema()
    required = set(schema.get("required", ()))
    fields = {}
    for name, prop in schema["properties"].items():
        value = _value(prop)
        # Required fields are nearly always there; optional ones often left out.
        present = st.sampled_from(
            [True] * 19 + [False] if name in required else [True, False, False]
        )
        fields[name] = st.tuples(present, value)
    extra = st.sampled_from([{}] * 15 + [{"colour": "red"}])
    return st.builds(
        lambda chosen, more: {n: v for n, (keep, v) in chosen.items() if keep} | more,
        st.fixed_dictionaries(fields),
        extra,
    )


def _message(records: list[dict[str, Any]], as_array: bool, compact: bool, ascii_: bool) -> bytes:
    body: Any = records if as_array else records[0]
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(body, separators=separators, ensure_ascii=ascii_).encode(
        "utf-8", "surrogatepass"
    )


@pytest.mark.parametrize("entity", list(ENTITY_MODELS))
def test_generated_records_decode_the_same_both_ways(tables: dict[str, Table], entity: str) -> None:
    valid: list[bytes] = []

    # Derandomized: the same examples on every run, so that the count below is stable.
    @settings(
        max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(
        st.lists(_record(entity), min_size=1, max_size=3),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    )
    def check(records: list[dict[str, Any]], as_array: bool, compact: bool, ascii_: bool) -> None:
        value = _message(records, as_array or len(records) > 1, compact, ascii_)
        fast, took_fast = _agree(tables, entity, value)
        if not fast.dead:
            # A valid message goes to the reference only for what the fast path leaves
            # to it by design: the comparison is not made vacuous by msgspec giving up.
            assert took_fast or _left_to_reference(value), value
            valid.append(value)

    check()
    assert len(valid) >= 10  # the generator's mix: enough valid messages to compare


def _left_to_reference(value: bytes) -> bool:
    """Valid messages the fast path leaves to the reference (see fastdecode's docstring),
    among what the generators make: a NUL escape, a fraction of 7+ digits (anywhere: the
    scan does not know which string is a timestamp), uuids in braces or as URNs, times
    without seconds (msgspec refuses them)."""
    return (
        b"\\u0000" in value
        or re.search(rb"\.\d{7}", value) is not None
        or b"urn:uuid:" in value
        or re.search(rb'"\{[0-9a-fA-F-]{36}\}"', value) is not None
        or re.search(rb'"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d[Zz+-]', value) is not None
    )


def _sdk_record(entity: str) -> st.SearchStrategy[bytes]:
    """Valid records as the SDK writes them (codec.encode_record: pydantic's JSON)."""
    model = ENTITY_MODELS[entity]
    schema = model.model_json_schema()

    def build(values: dict[str, Any]) -> bytes | None:
        try:
            record = model.model_validate_json(json.dumps(values))
        except ValueError:
            return None
        return record.model_dump_json(exclude_unset=True).encode()

    valid_text = st.text(alphabet=string.ascii_letters + "é😀 \n", max_size=20)
    fields = {}
    for name, prop in schema["properties"].items():
        options = prop.get("anyOf", [prop])
        plain_text = {o.get("type") for o in options} >= {"string"} and not any(
            o.get("format") or o.get("enum") for o in options
        )
        fields[name] = valid_text if plain_text else _value(prop)
    built = st.fixed_dictionaries(fields).map(build)
    return built.filter(lambda v: v is not None)  # type: ignore[return-value]


@pytest.mark.parametrize("entity", list(ENTITY_MODELS))
def test_sdk_records_give_byte_identical_rows(tables: dict[str, Table], entity: str) -> None:
    """Where the jsonb text is the reference's own serialisation, rows are equal as bytes."""
    taken: list[bool] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_sdk_record(entity), min_size=1, max_size=3))
    def check(values: list[bytes]) -> None:
        for value in (values[0], b"[" + b",".join(values) + b"]"):
            if len(values) > 1 and value is values[0]:
                continue
            fast, took_fast = _agree(tables, entity, value)
            reference = Outcome(tables, entity, value, fast=False)
            assert fast.raw_rows == reference.raw_rows
            taken.append(took_fast)

    check()
    assert sum(taken) >= len(taken) // 2, (sum(taken), len(taken))


def test_rows_of_parsed_jsonb_are_formatted_as_one_by_one(tables: dict[str, Table]) -> None:
    """RowEncoder.rows takes jsonb as JSON text in one C-level call; a record whose jsonb is
    a parsed value (the reference's records) gets its row from the dumper that takes both,
    so rows() and the one-by-one call agree on every record, whichever dumper formatted it."""
    # The jsonb text as the reference serialises it: both ways give the same bytes.
    value = b'[{"user_id": "u", "metadata": {"a":[1,2.5]}}, {"user_id": "v"}]'
    encode = RowEncoder(tables["sessions"], sink_adapters())
    decoded = decode("sessions", value)
    parsed = [
        record.with_ingest_defaults(id_key=f"k/{i}", ingest_time=INGEST_TIME)
        for i, record in decoded.records
    ]
    assert isinstance(getattr(parsed[0], "metadata"), dict)  # noqa: B009
    structs = decode_wire("sessions", value)
    assert structs is not None
    for i, struct_ in enumerate(structs[0]):
        struct_.fill_ingest_defaults("k/", i, INGEST_TIME)
    for records in (parsed, structs[0]):
        rows = encode.rows(records)
        assert rows == [encode(r) for r in records]
        assert None not in rows
    assert encode.rows(parsed) == encode.rows(structs[0])
    # Rows that fail part-way (a parsed jsonb) between rows that do not: each row its own.
    mixed: list[RowSource] = [structs[0][0], parsed[0], structs[0][1], parsed[1], structs[0][0]]
    assert encode.rows(mixed) == [encode(r) for r in mixed]


# --- the fast path itself -----------------------------------------------------------------


def test_structs_follow_the_models_fields_in_order() -> None:
    for entity, model in ENTITY_MODELS.items():
        assert WIRE_TYPES[entity].__struct_fields__ == tuple(model.model_fields)
        assert WIRE_TYPES[entity].DETAIL_FIELDS == model.DETAIL_FIELDS


class _WithAFloat(Record):
    ratio: float


class _WithAFieldValidator(Record):
    name: str

    @field_validator("name")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class _WithAValidatorNeedingContext(Record):
    name: str

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Self:
        return self


@pytest.mark.parametrize(
    "model", [_WithAFloat, _WithAFieldValidator, _WithAValidatorNeedingContext]
)
def test_a_contract_change_it_cannot_mirror_fails_the_import(model: type[Record]) -> None:
    with pytest.raises(TypeError, match="fastdecode"):
        derive_struct(model)


def test_jsonb_passes_through_as_sent() -> None:
    value = b'{"user_id": "u", "metadata": {"b" : [1, 2.50, 1E2], "a": "\\u00e9"}}'
    [(record,), batch] = decode_wire("sessions", value)  # type: ignore[misc]
    assert not batch
    assert bytes(getattr(record, "metadata")) == b'{"b" : [1, 2.50, 1E2], "a": "\\u00e9"}'  # noqa: B009


def test_a_message_s_ingest_defaults_are_filled_as_one_by_one() -> None:
    value = b'[{"user_id": "u"}, {"user_id": "v", "id": "%s"}, {"user_id": "w"}]' % (
        str(uuid.uuid4()).encode()
    )
    wire_all, wire_each = decode_wire("sessions", value), decode_wire("sessions", value)
    assert wire_all is not None and wire_each is not None
    WIRE_TYPES["sessions"].fill_all_ingest_defaults(wire_all[0], "t/0/5/", INGEST_TIME)
    for index, record in enumerate(wire_each[0]):
        record.fill_ingest_defaults("t/0/5/", index, INGEST_TIME)
    assert wire_all[0] == wire_each[0]
    assert len({r.id for r in wire_all[0]}) == 3 and None not in {r.id for r in wire_all[0]}
    assert {getattr(r, "created_at") for r in wire_all[0]} == {INGEST_TIME}  # noqa: B009


def test_null_and_absent_jsonb_take_the_column_default() -> None:
    for value in (b'{"user_id": "u", "metadata": null}', b'{"user_id": "u"}'):
        [(record,), _] = decode_wire("sessions", value)  # type: ignore[misc]
        assert bytes(getattr(record, "metadata")) == b"{}"  # noqa: B009


@pytest.mark.parametrize(
    ("entity", "value"),
    [
        ("sessions", b'{"user_id": "u", "metadata": [1]}'),  # an object is required
        ("sessions", b'{"user_id": "u", "metadata": {"x": 1e400}}'),  # infinity for pydantic
        ("sessions", b'{"user_id": "u", "metadata": {"x": 1.8e+308}}'),
        ("sessions", b'{"user_id": "u", "metadata": {"x": -1' + b"1" * 320 + b".5}}"),
        ("sessions", b'{"user_id": "\xff"}'),  # not UTF-8, in a text field
        ("sessions", b'{"user_id": "u\\u0000"}'),  # NUL
        ("sessions", b'{"user_id": "u", "created_at": "2026-01-01T00:00:00.1234567Z"}'),
        ("sessions", b'{"user_id": "u", "metadata": {"x": "\xff"}}'),  # not UTF-8
        ("sessions", b'{"user_id": "u", "metadata": ' + b"[" * 195 + b"]" * 195 + b"}"),
        ("sessions", b"[]"),
        ("sessions", b' {"user_id": "u"}'),  # leading whitespace: the reference says
        ("events", b'{"event_type": "e", "payload": null}'),
        (
            "llm_interactions",
            b'{"session_id": "%s", "prompt": "p", "model": "m", "prompt_tokens": 1,'
            b' "cache_read_tokens": 5}' % str(uuid.uuid4()).encode(),
        ),
    ],
)
def test_what_the_fast_path_leaves_to_the_reference(entity: str, value: bytes) -> None:
    assert decode_wire(entity, value) is None


def test_a_shallow_document_is_still_taken() -> None:
    value = b'{"user_id": "u", "metadata": {"x": ' + b"[" * 150 + b"]" * 150 + b"}}"
    assert decode_wire("sessions", value) is not None
    assert Session.model_validate_json(value)


# --- runs of one-record messages decoded in one call -------------------------------------


def _run_agrees(entity: str, values: list[bytes]) -> bool:
    """decode_object_run gives the records of the messages decoded one by one, or None when
    one of them is not for the fast path; returns whether it took the run."""
    run = decode_object_run(entity, values)
    alone = [decode_wire(entity, v) for v in values]
    if any(a is None for a in alone):
        assert run is None
        return False
    assert run is not None
    assert run == [a[0][0] for a in alone if a is not None]
    return True


@pytest.mark.parametrize("entity", list(ENTITY_MODELS))
def test_a_run_of_generated_messages_decodes_as_its_messages_one_by_one(entity: str) -> None:
    took: list[bool] = []

    generated = st.tuples(_record(entity), st.booleans()).map(
        lambda rc: _message([rc[0]], False, rc[1], True)
    )
    # Mostly valid records (the SDK's), some generated ones (often invalid or not for
    # the fast path): runs taken whole and runs given up both happen.
    message = st.one_of(_sdk_record(entity), _sdk_record(entity), generated)

    @settings(
        max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(message, min_size=2, max_size=5))
    def check(values: list[bytes]) -> None:
        took.append(_run_agrees(entity, values))

    check()
    assert any(took) and not all(took)  # both outcomes were exercised


def test_a_run_with_a_corpus_message_decodes_as_its_messages_one_by_one() -> None:
    taken = 0
    for case in CORPUS:
        if not joinable(case.value):
            continue
        valid = _sdk_json(case.entity)
        taken += _run_agrees(case.entity, [valid, case.value, valid])
        _run_agrees(case.entity, [case.value, case.value])
    assert taken  # the corpus's valid objects were taken as runs


def test_a_message_that_would_swallow_its_neighbour_is_not_joined() -> None:
    # Neither is JSON alone; joined with a comma they read as one valid session whose
    # user_id is '},{' + ... and a valid one after it: as many records as messages.
    sid = str(uuid.uuid4()).encode()
    first = b'{"id":"' + sid + b'","user_id":"'
    second = b'{","metadata":{}}'
    third = b'{"id":"' + str(uuid.uuid4()).encode() + b'","user_id":"a"},{"user_id":"b"}'
    joined = b"[" + b",".join([first, second, third]) + b"]"
    assert len(msgspec.json.decode(joined)) == 3  # the count alone would not tell
    assert decode_wire("sessions", first) is None and decode_wire("sessions", second) is None
    assert decode_object_run("sessions", [first, second, third]) is None


def _sdk_json(entity: str) -> bytes:
    records = {
        "sessions": {"user_id": "u"},
        "events": {
            "event_type": "e",
            "trace_id": str(uuid.uuid4()),
            "session_id": str(uuid.uuid4()),
            "user_id": "u",
            "timestamp_ms": 1,
            "payload": {"k": [1, 2.5, None]},
        },
        "agents": {"name": "a", "type": "t", "session_id": str(uuid.uuid4())},
        "agent_executions": {
            "agent_id": str(uuid.uuid4()),
            "session_id": str(uuid.uuid4()),
            "input_data": {"q": "x"},
        },
        "llm_interactions": {"session_id": str(uuid.uuid4()), "prompt": "p", "model": "m"},
        "documents": {"session_id": str(uuid.uuid4()), "title": "t", "content": "c"},
    }
    return ENTITY_MODELS[entity].model_validate(records[entity]).model_dump_json().encode()


def _coordinates(source: Any) -> tuple[Any, ...]:
    return (source.topic, source.partition, source.offset, source.value)


def test_the_worker_decodes_a_run_as_its_messages_one_by_one(database: str) -> None:
    """Processor.decode_messages against decode_message on every message: the same items
    (records, rows, coordinates, derived ids, ingest times) and dead letters, with runs
    broken by an array message and one that falls back for an invalid message."""
    settings_ = Settings(topic_prefix="run.")
    sink = PostgresSink(database)
    sink.connect()
    try:
        processor = Processor(
            settings_, sink, DeadLetterPublisher(settings_), WorkerMetrics(), HealthState()
        )
        topic = topic_for("events", settings_.topic_prefix)
        values = [_sdk_json("events") for _ in range(12)]
        no_id = json.loads(values[0])
        del no_id["id"], no_id["created_at"]
        values[2] = json.dumps(no_id).encode()  # id and created_at from the coordinates
        values[5] = b"[" + values[5] + b"]"  # an array: ends a run
        values[9] = b'{"event_type": 5}'  # invalid: its run is decoded one by one
        messages = [
            ConsumerRecord(
                topic, 1, 40 + i, 1_764_800_000_000 + i // 3, 0, None, v, None, -1, 0, ()
            )
            for i, v in enumerate(values)
        ]

        def flat(prepared: list[Prepared]) -> tuple[list[Any], list[Any]]:
            items = [
                (i.record, i.row, i.index, i.original_bytes(), *_coordinates(i.source))
                for p in prepared
                for i in p.items
            ]
            dead = [(d.kind, d.offset, d.index, d.value) for p in prepared for d in p.dead]
            return items, dead

        one_by_one = [processor.decode_message(m) for m in messages]
        runs, i = [], 0
        while i < len(messages):
            run, i = processor.decode_messages(messages, i, len(messages), 100)
            runs.append(run)
        assert len(runs) == 3  # 0-4, the array, 6-11 (one by one: message 9 is invalid)
        assert [r.size for r in runs] == [5, 1, 6]
        assert flat(runs) == flat(one_by_one)
        assert [len(part) for part in flat(runs)] == [11, 1]
        assert runs[0].items[2].record.id == one_by_one[2].items[0].record.id
        # room bounds a run: two records' room takes two messages
        run, i = processor.decode_messages(messages, 0, len(messages), 2)
        assert (run.size, i) == (2, 2)
    finally:
        sink.close()


@pytest.mark.parametrize(
    "values",
    [
        [b"{}", b'{"a":1}', b"[{}]", b"{}"],
        [b"{}", b"{}", b"{}"],
        [b"{}", None, b"{}"],
        [b"{}", b"", b"{}"],
        [b" {}", b"{}"],
        [b"{}", b"{" + b" " * MAX_MESSAGE_BYTES + b"}", b"{}"],
        [b"{}", b"{}", b"[]", b"{}", b"{}"],
        [],
    ],
)
def test_joinable_prefix_counts_what_joinable_accepts(values: list[bytes | None]) -> None:
    expected = 0
    while expected < len(values) and joinable(values[expected]):
        expected += 1
    assert joinable_prefix(values) == expected
