"""Connecting to PostgreSQL through ADBC (Arrow Database Connectivity).

ADBC's PostgreSQL driver reads query results with binary COPY straight into Arrow columns,
in C: several times faster than rows through a Python driver. Exports and the rollup's
reads of committed facts use it.
"""

from __future__ import annotations

__all__ = ["adbc_uri"]


def adbc_uri(conninfo: str) -> str:
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
