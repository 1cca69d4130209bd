"""agentstream as a user installs it: the built wheel in a fresh virtualenv outside the checkout.

An editable install finds everything in the checkout; only a wheel shows what ships (the
migrations and prices as package data, one top-level package) and what the base install
brings (the SDK's dependencies only; the worker and the analytics are extras).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

import agentstream
from agentstream.contract.settings import Settings
from tests.support.services import Services, drop_database
from tests.support.worker import WorkerProcess, wait_for, worker_env

ROOT = Path(__file__).resolve().parents[1]

# What the SDK must not pull in: the worker's and the analytics' dependencies.
HEAVY_MODULES = ("faust", "mode", "pandas", "pyarrow", "matplotlib", "duckdb", "psycopg", "numpy")


def uv() -> list[str] | None:
    """uv (installed beside the interpreter by ``make install``): a venv and an install from
    its cache take about a second, where ``python -m venv`` and pip take tens."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    return [found] if found else None


def build_wheel(dest: Path) -> Path:
    """Build the wheel from a copy of the sources, so that no ``build/`` left in the checkout
    (which setuptools reuses, stale files included) gets into it."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "agentstream",
        src / "agentstream",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    runner = uv()
    if runner:
        command = [*runner, "build", "--wheel", "--out-dir", str(dest), str(src)]
    else:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dest), str(src)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [wheel] = dest.glob("agentstream-*.whl")
    return wheel


def make_venv(where: Path, requirement: str) -> Path:
    """A fresh virtualenv with ``requirement`` installed; returns its ``bin`` folder."""
    runner = uv()
    if runner:
        commands = [
            [*runner, "venv", "-q", "--python", sys.executable, str(where)],
            [*runner, "pip", "install", "-q", "--python", str(where / "bin/python"), requirement],
        ]
    else:
        commands = [
            [sys.executable, "-m", "venv", str(where)],
            [str(where / "bin/python"), "-m", "pip", "install", "-q", requirement],
        ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return where / "bin"


# Processes of the fresh virtualenv must see only it, not this checkout (an empty
# PYTHONPATH adds nothing to sys.path).
OUTSIDE = {"PYTHONPATH": ""}


def run(
    bin_dir: Path, *args: str, cwd: Path, env: dict[str, str], status: int = 0
) -> subprocess.CompletedProcess[str]:
    """``bin_dir/args[0] args[1:]`` from ``cwd``; asserts that it exits with ``status``."""
    command = [str(bin_dir / args[0]), *args[1:]]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == status, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_one_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"agentstream", f"agentstream-{agentstream.__version__}.dist-info"}, tops
    shipped_sql = sorted(n for n in names if n.startswith("agentstream/sql/"))
    in_checkout = sorted(
        f"agentstream/sql/{p.name}" for p in (ROOT / "agentstream/sql").glob("*.sql")
    )
    assert shipped_sql == in_checkout and in_checkout
    assert "agentstream/analytics/data/prices.json" in names
    assert "agentstream/py.typed" in names


def test_the_base_install_is_enough_for_the_sdk_and_names_the_missing_extras(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = make_venv(tmp_path / "venv", str(wheel))
    env = {**os.environ, **OUTSIDE}
    script = (
        "import sys; from agentstream import AgentStream, SyncAgentStream, uuid7; "
        "print(AgentStream.__module__, uuid7().version)"
    )
    done = run(bin_dir, "python", "-c", script, cwd=tmp_path, env=env)
    assert done.stdout.split() == ["agentstream.producers.client", "7"]
    assert "worker" in run(bin_dir, "agentstream", "--help", cwd=tmp_path, env=env).stdout
    for command, extra in (("worker", "worker"), ("rollup", "analytics"), ("otlp", "otlp")):
        done = run(bin_dir, "agentstream", command, cwd=tmp_path, env=env, status=2)
        assert f"pip install 'agentstream[{extra}]'" in done.stderr, done.stderr[-3000:]


SDK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    from agentstream import SyncAgentStream, ensure_topics
    from agentstream.contract.settings import Settings

    settings = Settings()
    asyncio.run(ensure_topics(settings))
    with SyncAgentStream(settings) as stream:
        session = stream.start_session(user_id="wheel-user")
        agent = session.register_agent(name="planner", type="react")
        with agent.execute(input_data={"task": "t"}) as run:
            with run.llm_call(model="gpt-4o", prompt="p") as call:
                call.record("r", prompt_tokens=1000, response_tokens=500)
    print(json.dumps({"session": str(session.id), "llm": str(call.interaction.id)}))
    """
)


@pytest.fixture
def fresh_database(services: Services) -> Iterator[str]:
    """The name of a database that does not exist yet (``agentstream migrate`` creates it)."""
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    yield name
    drop_database(services, name)


@pytest.mark.integration
def test_the_installed_wheel_runs_the_pipeline_outside_the_checkout(
    wheel: Path, services: Services, fresh_database: str, topic_prefix: str, tmp_path: Path
) -> None:
    bin_dir = make_venv(tmp_path / "venv", f"{wheel}[all]")
    home = tmp_path / "home"  # the cwd of every command: no checkout, no .env
    home.mkdir()
    settings = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        database_url=services.conninfo(fresh_database),
        topic_prefix=topic_prefix,
        topic_partitions=1,  # one partition per topic: the worker joins its group sooner
        worker_group=f"{topic_prefix}sink",
        worker_metrics_port=0,
        worker_data_dir=home / "worker",
        worker_batch_seconds=0.2,
    )
    env = worker_env(settings, **OUTSIDE)

    where = run(
        bin_dir,
        "python",
        "-c",
        "import agentstream; print(agentstream.__file__)",
        cwd=home,
        env=env,
    ).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where

    migrated = run(bin_dir, "agentstream", "migrate", cwd=home, env=env).stdout
    assert "created database" in migrated and "database is up to date" in migrated, migrated

    worker = WorkerProcess(settings, tmp_path / "worker.log", **OUTSIDE)
    worker.start(python=bin_dir / "python", cwd=home)
    try:
        ids = json.loads(run(bin_dir, "python", "-c", SDK_SCRIPT, cwd=home, env=env).stdout)

        def landed() -> bool:
            with psycopg.connect(settings.database_conninfo()) as conn:
                row = conn.execute(
                    "SELECT session_id FROM llm_interactions WHERE id = %s", (ids["llm"],)
                ).fetchone()
            return row is not None and str(row[0]) == ids["session"]

        assert wait_for(landed, 60), worker.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        worker.close()

    rollup = json.loads(run(bin_dir, "agentstream", "rollup", "--json", cwd=home, env=env).stdout)
    assert rollup["full"], rollup  # the first run builds everything
    report = json.loads(
        run(
            bin_dir, "agentstream", "report", "--format", "json", "--since", "1d", cwd=home, env=env
        ).stdout
    )
    [row] = report["rows"]
    assert (row["key"], row["calls"], row["unpriced_calls"]) == ("gpt-4o", 1, 0), report
    assert float(row["cost"]) > 0, report  # priced from the prices.json in the wheel
    out = home / "parquet"
    exported = run(
        bin_dir,
        "agentstream",
        "export",
        "llm_interactions",
        "--full",
        "--json",
        "--out",
        str(out),
        cwd=home,
        env=env,
    ).stdout
    assert json.loads(exported)["rows"] == 1, exported
    [part] = out.glob("llm_interactions/date=*/part-0.parquet")
    assert [str(i) for i in pq.read_table(part).column("id").to_pylist()] == [ids["llm"]]


def test_importing_the_sdk_loads_neither_the_worker_nor_the_analytics() -> None:
    script = (
        "import sys, agentstream\n"
        "from agentstream import AgentStream, SyncAgentStream\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize(
    ("command", "hidden", "extra"),
    [("worker", "prometheus_client", "worker"), ("report", "psycopg", "analytics")],
)
def test_a_command_without_its_extra_says_which_to_install(
    command: str, hidden: str, extra: str
) -> None:
    # A None in sys.modules makes `import prometheus_client` raise ModuleNotFoundError, as if the
    # extra were not installed.
    script = (
        "import sys\n"
        f"sys.modules[{hidden!r}] = None\n"
        "from agentstream.cli.main import main\n"
        f"sys.exit(main([{command!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"pip install 'agentstream[{extra}]'" in done.stderr, done.stderr
    assert f"({hidden} is not installed)" in done.stderr, done.stderr
