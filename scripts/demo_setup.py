"""`make demo`'s own sandbox: a fresh database and topics of its own, never the user's.

Prints the shell `export` lines that point agentstream at them (scripts/demo.sh evals them)
and writes the same lines to OUT/demo.env, so the commands the demo suggests afterwards
work after `set -a; . OUT/demo.env; set +a`. Each run gets new topics (prefix
`demo.<epoch>.`); the previous runs' demo topics are deleted first.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentstream.contract.settings import get_settings
from agentstream.topic_admin import delete_topics

DEMO_DB = "agentstream_demo"
OLD_DEMO_TOPIC = re.compile(r"^demo\.\d+\.")


def recreate_database(conninfo: str) -> str:
    """Drop and create the demo database; return a conninfo for it."""
    params = conninfo_to_dict(conninfo)
    maintenance = make_conninfo(conninfo, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DB))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
    params["dbname"] = DEMO_DB
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
    settings = get_settings()
    conninfo = recreate_database(settings.database_conninfo())
    deleted = asyncio.run(delete_topics(settings, OLD_DEMO_TOPIC.match))
    run = int(time.time())
    env = {
        "AGENTSTREAM_DATABASE_URL": conninfo,
        "AGENTSTREAM_TOPIC_PREFIX": f"demo.{run}.",
        "AGENTSTREAM_WORKER_GROUP": f"demo.{run}.sink",
    }
    lines = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.env").write_text(lines)
    print(lines, end="")
    print(
        f"demo: fresh database {DEMO_DB!r}, topics 'demo.{run}.*' "
        f"({deleted} topics of earlier demo runs deleted)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
