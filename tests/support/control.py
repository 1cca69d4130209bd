"""Stop and start the local services mid-test (the fault suite's hands).

Only for the local services that ``make services`` runs from this checkout: with
testcontainers (a Docker engine) these tests are skipped, never faked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, action: str) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / f"{name}.sh"), action],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name}.sh {action} failed:\n{done.stdout}\n{done.stderr}")


def owns_local_services() -> bool:
    """True when this checkout's scripts started the running services (so they may stop them)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Both lines must say running: "this checkout's cluster: not running" (another
    # checkout's services answer) means stopping them is not ours to do.
    running = re.findall(r"this checkout's (?:broker|cluster): running", done.stdout)
    return done.returncode == 0 and len(running) >= 2


def stop_postgres() -> None:
    _script("postgres", "stop")


def start_postgres() -> None:
    _script("postgres", "start")


def stop_kafka() -> None:
    _script("kafka", "stop")


def start_kafka() -> None:
    _script("kafka", "start")
