"""Run ``agentstream worker`` as a real process, as production does, to stop and kill it;
and wait for what it does (rows written, offsets committed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

import psycopg

from agentstream.contract.settings import Settings
from agentstream.streams.lag import group_lag
from tests.support.traffic import row_count


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AGENTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "AGENTSTREAM_DATABASE_URL": settings.database_conninfo(),
        "AGENTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTSTREAM_WORKER_GROUP": settings.worker_group,
        "AGENTSTREAM_WORKER_METRICS_PORT": "0",
        "AGENTSTREAM_WORKER_BATCH_RECORDS": str(settings.worker_batch_records),
        "AGENTSTREAM_WORKER_BATCH_SECONDS": str(settings.worker_batch_seconds),
        "AGENTSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "AGENTSTREAM_WORKER_DATA_DIR": str(settings.worker_data_dir),
    }
    env.update(extra)
    return env


def catches(pid: int, sig: signal.Signals) -> bool:
    """Does process ``pid`` have a handler for ``sig`` (Linux: SigCgt in /proc/PID/status)?"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


class WorkerProcess:
    """One worker process (``agentstream worker *args``); its output goes to ``log_path``."""

    command = "worker"

    def __init__(self, settings: Settings, log_path: Path, *args: str, **extra_env: str) -> None:
        self.settings = settings
        self.log_path = log_path
        self.args = args
        self.env = worker_env(settings, **extra_env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, python: Path | str = sys.executable, cwd: Path | None = None) -> Self:
        """Start it with ``python`` (another virtualenv's, say) from ``cwd`` (default: here)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(python), "-m", "agentstream", self.command, *self.args],
            env=self.env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, sig: signal.Signals = signal.SIGTERM, wait_s: float = 60.0) -> int:
        """SIGTERM (or ``sig``), as an orchestrator does; returns the exit code.

        Sent once the process catches the signal: in the first ~60 ms of a process the
        interpreter is still starting and no program can handle it yet (the worker handles
        it from its first line of code on: exit 0 before it consumes, drain after).
        """
        assert self.proc is not None
        self._wait_catching(sig)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(wait_s)

    def _wait_catching(self, sig: signal.Signals, wait_s: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + wait_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            if catches(self.proc.pid, sig):
                return
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def wait_exit(self, wait_s: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.kill()


def wait_for(predicate: Callable[[], bool], wait_s: float, interval: float = 0.25) -> bool:
    """Poll ``predicate()`` until true or ``wait_s`` seconds pass."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


async def drain_and_stop(
    worker: WorkerProcess, conninfo: str, tables: Iterable[str], expected: int, wait_s: float = 180
) -> None:
    """Wait until ``tables`` hold ``expected`` rows, then SIGTERM ``worker``: it must exit 0."""
    tables = list(tables)
    landed = await asyncio.to_thread(
        wait_for, lambda: row_count(conninfo, tables) >= expected, wait_s
    )
    assert landed, f"only {row_count(conninfo, tables)} of {expected}:\n{worker.log()[-3000:]}"
    assert worker.terminate() == 0, worker.log()[-3000:]


async def wait_committed(settings: Settings, timeout_s: float = 90) -> None:
    """Wait until the worker group has committed every entity topic up to its end."""
    deadline = time.monotonic() + timeout_s
    while (lag := await group_lag(settings)).total:
        if time.monotonic() > deadline:
            raise AssertionError(f"worker group still behind: {lag.by_topic}")
        await asyncio.sleep(0.5)


async def wait_rows(conninfo: str, table: str, count: int, timeout_s: float = 90) -> int:
    """Poll ``table`` (a name from the contract's list) until it holds ``count`` rows."""
    deadline = time.monotonic() + timeout_s
    n = -1
    while time.monotonic() < deadline:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            n = int(row[0]) if row else 0
        if n >= count:
            return n
        await asyncio.sleep(0.5)
    return n
