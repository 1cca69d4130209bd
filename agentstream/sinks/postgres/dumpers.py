"""The sink's own dumpers for copy.py's row encoders: jsonb (binary: a version byte, then
the JSON text) and uuid.

Kept out of copy.py because that module is compiled with mypyc (pyproject.toml): these are
subclasses of psycopg's Dumper whose class attributes psycopg's C code reads (``oid``,
``format``) and whose ``dump`` is replaced per instance, neither of which a compiled
(native) class supports.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pydantic_core
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["JsonbBinaryDumper", "TextJsonbBinaryDumper", "uuid_binary_dumper"]

_JSONB_VERSION = b"\x01"  # the binary jsonb format's first byte

# What a jsonb value parsed from JSON is (pydantic's JsonValue; None is NULL, not dumped).
_JSON_TREE = (dict, list, str, int, float)


class JsonbBinaryDumper(Dumper):
    """jsonb in binary (a version byte, then the text) in one Python call per value:
    psycopg's own goes through three.

    A parsed value (dict, list, str, number, bool) is serialised by pydantic-core. Anything
    else is JSON text that the worker's decoder checked (bytes, or msgspec.Raw: a slice of
    the message, see streams/fastdecode.py) and is passed through as it is."""

    format = Format.BINARY
    oid = psycopg.adapters.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        if isinstance(obj, _JSON_TREE):
            return _JSONB_VERSION + pydantic_core.to_json(obj)
        return _JSONB_VERSION + obj  # type: ignore[no-any-return]


class TextJsonbBinaryDumper(JsonbBinaryDumper):
    """jsonb in binary for JSON text only (bytes, msgspec.Raw: the decoder's structs), as
    a C-level call: psycopg's C formatter calls a dumper's ``dump`` attribute, and a bound
    ``bytes.__add__`` costs a fraction of a Python method (figures in BENCHMARKS.md). For
    anything else (a parsed value) it raises TypeError, and :meth:`copy.RowEncoder.rows`
    formats that row again with :class:`JsonbBinaryDumper`: where both succeed, their
    bytes are the same (the version byte, then the text)."""

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self.dump = _JSONB_VERSION.__add__  # type: ignore[method-assign,assignment]


def uuid_binary_dumper(to_bytes: Callable[[uuid.UUID], bytes]) -> type[Dumper]:
    """A binary uuid dumper whose ``dump`` is ``to_bytes`` itself (copy.py's, compiled):
    psycopg's own is a Python method reading a Python property, two Python calls per uuid,
    three uuids in a row of ``events``."""

    class UuidBinaryDumper(Dumper):
        format = Format.BINARY
        oid = psycopg.adapters.types["uuid"].oid

        def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
            super().__init__(cls, context)
            self.dump = to_bytes  # type: ignore[method-assign,assignment]

        def dump(self, obj: Any) -> bytes:  # replaced per instance, above
            return to_bytes(obj)

    return UuidBinaryDumper
