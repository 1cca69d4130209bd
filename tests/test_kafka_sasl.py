"""Kafka SASL settings reach every client, proven on a real SASL listener.

scripts/kafka.sh gives the local broker a second listener, SASL_PLAINTEXT with mechanism
PLAIN (user agentstream, password agentstream-local). Everything here goes through it: the
SDK and its admin client (`agentstream produce`), the worker's consumer, its dead-letter
producer and its topic admin, `agentstream status` and `agentstream dlq`. A wrong password
must fail clearly, without printing the password.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from tests.support.worker import WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

USER, PASSWORD = "agentstream", "agentstream-local"


def sasl_bootstrap(settings: Settings) -> str:
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    return f"{host}:{int(port) + 2}"


def sasl_env(settings: Settings, password: str = PASSWORD) -> dict[str, str]:
    return {
        "AGENTSTREAM_KAFKA_BOOTSTRAP": sasl_bootstrap(settings),
        "AGENTSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AGENTSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
        "AGENTSTREAM_KAFKA_SASL_USERNAME": USER,
        "AGENTSTREAM_KAFKA_SASL_PASSWORD": password,
    }


@pytest.fixture
def sasl(settings: Settings) -> dict[str, str]:
    host, _, port = sasl_bootstrap(settings).rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.skip(f"no SASL listener at {host}:{port} (a broker not started by scripts/kafka.sh)")
    return sasl_env(settings)


def agentstream(
    settings: Settings, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentstream", *args],
        env={**worker_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_every_client_works_over_sasl(
    settings: Settings, sasl: dict[str, str], tmp_path: Path
) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log", **sasl).start()
    try:
        produced = await asyncio.to_thread(
            agentstream,
            settings,
            sasl,
            "produce",
            "--sessions",
            "5",
            "--seed",
            "3",
            "--json",
            "--no-progress",
        )
        assert produced.returncode == 0, produced.stderr[-3000:]
        summary = json.loads(produced.stdout.strip().splitlines()[-1])
        # One malformed message through a plain client with the same settings: the worker's
        # dead-letter producer must reach the broker over SASL too.
        sasl_settings = Settings(
            kafka_bootstrap=sasl["AGENTSTREAM_KAFKA_BOOTSTRAP"],
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username=USER,
            kafka_sasl_password=PASSWORD,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=sasl_settings.kafka_bootstrap, **sasl_settings.kafka_client_options()
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic_for("events", settings.topic_prefix), b"{not json")
        finally:
            await producer.stop()

        drained = await asyncio.to_thread(
            agentstream, settings, sasl, "status", "--wait-drained", "--timeout", "120", "--json"
        )
        assert drained.returncode == 0, drained.stderr[-3000:] + worker.log()[-3000:]
        status = json.loads(drained.stdout)
        assert status["rows"]["llm_interactions"] == summary["records"]["llm_interactions"]
        assert status["rows"]["events"] == summary["records"]["events"]

        def letter_listed() -> bool:
            listed = agentstream(settings, sasl, "dlq", "list")
            return listed.returncode == 0 and "1 dead letter(s)" in listed.stdout

        assert await asyncio.to_thread(wait_for, letter_listed, 60), worker.log()[-3000:]
        with psycopg.connect(settings.database_conninfo()) as conn:
            row = conn.execute("SELECT count(*) FROM sessions").fetchone()
        assert row == (summary["sessions"],)
        assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        worker.close()


def test_a_wrong_password_fails_clearly_and_is_not_printed(
    settings: Settings, sasl: dict[str, str]
) -> None:
    wrong = "not-the-password-4711"
    env = sasl_env(settings, password=wrong) | {"AGENTSTREAM_PRODUCER_SEND_TIMEOUT_S": "10"}
    done = agentstream(settings, env, "produce", "--sessions", "1", "--no-progress")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "Authentication failed" in done.stderr  # aiokafka's own line names the cause
    assert "AGENTSTREAM_KAFKA_SASL_MECHANISM, ..._USERNAME, ..._PASSWORD" in done.stderr
    assert wrong not in done.stdout + done.stderr
