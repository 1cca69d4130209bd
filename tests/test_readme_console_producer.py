"""The README's wire-contract example, run as written: Kafka's console producer -> worker -> row.

Producers in other languages rely on that example; if it stops working, this test says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from agentstream.contract.settings import Settings
from tests.support.worker import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The shell command of the README's console-producer example (the kcat line dropped)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if "ConsoleProducer" in b]
    return "\n".join(line for line in block.splitlines() if not line.startswith("#"))


def test_the_readme_console_producer_example_lands_a_row(
    settings: Settings, tmp_path: Path
) -> None:
    command = readme_example()
    [record_json] = re.findall(r"echo '(\{.*?\})'", command)
    record = json.loads(record_json)
    # The same command, aimed at this test's own topics and a broker from settings.
    command = command.replace("agentstream.sessions", f"{settings.topic_prefix}sessions")
    command = command.replace("127.0.0.1:9092", settings.kafka_bootstrap)

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]

        def landed() -> bool:
            with psycopg.connect(settings.database_conninfo()) as conn:
                row = conn.execute(
                    "SELECT user_id FROM sessions WHERE id = %s", (uuid.UUID(record["id"]),)
                ).fetchone()
            return row == (record["user_id"],)

        assert wait_for(landed, 90), worker.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        worker.close()
