"""Connecting to PostgreSQL through ADBC (Arrow Database Connectivity).

ADBC's PostgreSQL driver reads query results with binary COPY straight into Arrow columns,
in C: several times faster than rows through a Python driver. Exports and the rollup's
reads of committed facts use it, through ``AdbcSession``: the driver manager's low-level
API. ADBC's DB-API module imports ``pyarrow.dataset`` and with it pandas, 1.2 s of a run
for nothing. (So does pyarrow itself the first time a process builds a scalar or converts
a numpy array with ``pa.array``: analytics/export.py avoids both for the same reason.)
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

__all__ = ["AdbcSession"]


class AdbcSession:
    """One ADBC connection: ``execute`` a statement, ``read`` a query's result into an Arrow
    table, or ``stream`` it batch by batch (bounded memory)."""

    def __init__(self, conninfo: str) -> None:
        import adbc_driver_manager
        import adbc_driver_postgresql  # type: ignore[import-untyped]

        self._manager = adbc_driver_manager
        self._database = adbc_driver_postgresql.connect(_adbc_uri(conninfo))
        try:
            self._conn = adbc_driver_manager.AdbcConnection(self._database)
        except BaseException:
            self._database.close()
            raise

    @contextmanager
    def _statement(self, sql: str) -> Iterator[Any]:
        statement = self._manager.AdbcStatement(self._conn)
        try:
            statement.set_sql_query(sql)
            yield statement
        finally:
            statement.close()

    def execute(self, sql: str) -> None:
        with self._statement(sql) as statement:
            statement.execute_update()

    def read(self, sql: str) -> pa.Table:
        with self._statement(sql) as statement:
            handle, _ = statement.execute_query()
            return pa.RecordBatchReader._import_from_c(handle.address).read_all()

    def stream(self, sql: str) -> Generator[pa.RecordBatch, None, None]:
        """The result of ``sql`` as it arrives. (A query with bound parameters would be read
        whole by the driver: inline literals instead.)"""
        with self._statement(sql) as statement:
            handle, _ = statement.execute_query()
            yield from pa.RecordBatchReader._import_from_c(handle.address)

    def close(self) -> None:
        self._conn.close()
        self._database.close()


def _adbc_uri(conninfo: str) -> str:
    """ADBC wants a URI; psycopg accepts key=value too: convert that form."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    host = params.pop("host", "localhost")
    port = params.pop("port", "5432")
    user = params.pop("user", "")
    password = params.pop("password", "")
    dbname = params.pop("dbname", "")
    auth = quote(user) + (":" + quote(password) if password else "") + ("@" if user else "")
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return f"postgresql://{auth}{host}:{port}/{quote(dbname)}" + (f"?{query}" if query else "")
