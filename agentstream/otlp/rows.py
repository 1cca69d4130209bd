"""Records in their wire form: the JSON object the sink reads, built without a pydantic model.

Validating each record with its entity model cost the intake more than everything else it
does per span (BENCHMARKS.md, "OpenTelemetry intake"). The mapper (mapping.py) builds each
record's fields so that they satisfy the entity contract by construction:

* text and varchar columns go through ``_clean`` / ``_fit`` (no NUL, within the limit);
* integers through ``_count`` or clamps (0..2^31-1), times through ``_time`` (years
  1970-9999), statuses are literals, ids are uuid5, no field the model does not have;
* an LLM call's usage through ``usage_problem``, the rule the model itself applies.

What construction cannot promise is in the jsonb columns, whose values come from the span:
a NUL inside a nested string, NaN or Infinity, nesting deeper than the sink's JSON parser
takes, a lone surrogate. (A record without jsonb columns, an LLM call, holds only text
the mapper cleaned and integers: only a lone surrogate is possible, and serialising
finds it. msgspec writes those, and the records whose jsonb values the mapper vouches for,
``plain``.) For the others :func:`row` serialises the fields (in Rust) and looks in the
bytes: a lone surrogate fails serialisation; the NUL escape and the NaN/Infinity
literals are the codec's own pre-scan markers (``needs_walk``): a record with one (or with
a false alarm, the word NaN in a prompt) is validated with its model, as the sink will;
nesting cannot be deeper than the count of opening brackets: a record with jsonb columns
and many brackets is parsed as a batch message, as the sink will (its parser stops near
200 levels, a little before the model's own bound). A record that fails refuses its span.

``tests/test_otlp_mapping.py`` validates every record mapped from the conventions' test
traces with the entity models and checks that validation changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic_core
from pydantic import ValidationError

from agentstream.contract.codec import describe_error, needs_walk
from agentstream.contract.entities import ENTITY_MODELS, Entity, Record

__all__ = ["Row", "RowRefused", "row"]

# A record whose JSON opens at most this many brackets nests at most that deep, and a batch
# message adds one level: far below the ~200 levels the sink's JSON parser takes.
_SAFE_BRACKETS = 150


_WITH_JSONB = frozenset(entity for entity, model in ENTITY_MODELS.items() if model.JSON_FIELDS)
# Records without jsonb columns hold only cleaned text, integers, booleans and UUIDs, which
# msgspec writes as pydantic-core does, in half the time. It writes NaN and Infinity as
# null, where pydantic-core writes the literals the scans below look for: so only records
# that cannot hold them (no jsonb columns, or ``plain``) are written by msgspec. (A large
# float in a plain jsonb value may be spelled differently, 1e16 for 1e+16: the same value.)
_encode_plain = msgspec.json.Encoder().encode


class RowRefused(ValueError):
    """A record that would break the entity contract: its span is refused with this reason."""


class Row:
    """One record of ``entity`` as its JSON object, with its Kafka key (its session's id).

    A plain class, not a NamedTuple: compiled, a NamedTuple's __new__ is interpreted code
    (a quarter of a microsecond a record)."""

    __slots__ = ("entity", "key", "value")

    def __init__(self, entity: Entity, key: str, value: bytes) -> None:
        self.entity: Entity = entity
        self.key = key
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return (self.entity, self.key, self.value) == (other.entity, other.key, other.value)

    def __repr__(self) -> str:
        return f"Row(entity={self.entity!r}, key={self.key!r}, value={self.value!r})"

    def model(self) -> Record:
        """The record as the sink validates it (raises pydantic's ValidationError if not)."""
        return ENTITY_MODELS[self.entity].model_validate_json(self.value)


def row(entity: Entity, key: str, fields: dict[str, Any], *, plain: bool = False) -> Row:
    """Serialise a record the mapper built; raises :class:`RowRefused` for one the sink
    would refuse (see the module's docstring for what is checked and what is trusted).

    ``plain``: the mapper vouches that the record's jsonb values hold only what it built
    (its own keys, cleaned text, ids), the span's values that are None, bools, ints or text
    without NUL, and JSON parsed from text that cannot hold what the scans find
    (``mapping._json_value``): so they are skipped."""
    if plain or entity not in _WITH_JSONB:
        try:
            return Row(entity, key, _encode_plain(fields))
        except UnicodeEncodeError:
            raise RowRefused("a string is not valid Unicode (a lone surrogate)") from None
        except (TypeError, ValueError, OverflowError):
            pass  # a value msgspec does not write: the general path decides
    try:
        value = pydantic_core.to_json(fields)
    except pydantic_core.PydanticSerializationError:
        raise RowRefused("a string is not valid Unicode (a lone surrogate)") from None
    if needs_walk(value):
        _validate(entity, value)
    if value.count(b"[") + value.count(b"{") > _SAFE_BRACKETS:
        _parse_in_a_batch(value)
    return Row(entity, key, value)


def _validate(entity: Entity, value: bytes) -> None:
    try:
        ENTITY_MODELS[entity].model_validate_json(value)
    except ValidationError as exc:
        raise RowRefused(describe_error(exc)) from None


def _parse_in_a_batch(value: bytes) -> None:
    try:
        pydantic_core.from_json(b"[" + value + b"]")
    except ValueError as exc:
        raise RowRefused(f"its JSON cannot be read back in a batch message: {exc}") from None
