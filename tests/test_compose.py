"""docker-compose.yml is accepted by `docker compose config` (client only, no engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_available() -> bool:
    if not shutil.which("docker"):
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not compose_available(), reason="no compose plugin: run make check-compose")
def test_compose_file_is_valid_and_has_the_services() -> None:
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert {"kafka", "postgres", "migrate", "worker"} <= set(done.stdout.split())
