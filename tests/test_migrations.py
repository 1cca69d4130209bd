"""Migrations are history: an applied file may change only in its comments, and only when its
earlier checksum is listed; any other change is refused with what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agentstream.analytics.rollup import run_rollup
from agentstream.analytics.rollup.run import STALE_BUCKETS_REASON
from agentstream.migrations import (
    _EARLIER_CHECKSUMS,
    SQL_DIR,
    MigrationError,
    apply_migrations,
    load_migrations,
)
from tests.support.services import Services, create_database, drop_database

# 0001's header as it was applied by earlier releases (it named a path outside the repository).
_OLD_0001_HEADER = (
    "-- 0001: the seed schema (shared/seeds/000_63eecd942cd08b5b.txt), exactly as written there.\n"
)
_NEW_0001_HEADER = (
    "-- 0001: the seed schema (seed 000_63eecd942cd08b5b; the repository's copy is\n"
    "-- tests/fixtures/seed_000_63eecd942cd08b5b.txt), exactly as written there.\n"
)


def old_0001() -> str:
    current = (SQL_DIR / "0001_seed_schema.sql").read_text(encoding="utf-8")
    assert current.startswith(_NEW_0001_HEADER)
    return _OLD_0001_HEADER + current.removeprefix(_NEW_0001_HEADER)


def test_the_listed_earlier_checksum_is_the_same_statements_under_the_old_comment() -> None:
    (current,) = [m.checksum for m in load_migrations() if m.version == 1]
    assert set(_EARLIER_CHECKSUMS) == {current}
    old = hashlib.sha256(old_0001().encode()).hexdigest()
    assert _EARLIER_CHECKSUMS[current] == {old}


def copy_migrations(to: Path, *, replace: dict[str, str]) -> Path:
    to.mkdir()
    for migration in load_migrations():
        text = replace.get(migration.path.name, migration.sql)
        (to / migration.path.name).write_text(text, encoding="utf-8")
    return to


@pytest.mark.integration
def test_a_database_migrated_before_the_comment_edit_is_accepted_and_a_real_edit_is_not(
    services: Services, tmp_path: Path
) -> None:
    earlier = copy_migrations(tmp_path / "earlier", replace={"0001_seed_schema.sql": old_0001()})
    name = create_database(services)
    try:
        conninfo = services.conninfo(name)
        assert len(apply_migrations(conninfo, earlier)) == len(load_migrations())
        assert apply_migrations(conninfo) == []  # today's files: nothing refused, nothing redone
        edited = old_0001().replace("VARCHAR(255)", "VARCHAR(256)", 1)
        changed = copy_migrations(tmp_path / "edited", replace={"0001_seed_schema.sql": edited})
        with pytest.raises(MigrationError, match=r"0001_seed_schema\.sql changed after it was"):
            apply_migrations(conninfo, changed)
    finally:
        drop_database(services, name)


@pytest.mark.integration
def test_0013_has_the_next_rollup_rebuild_every_bucket(services: Services, tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for migration in load_migrations():
        if migration.version < 13:
            (before / migration.path.name).write_text(migration.sql, encoding="utf-8")
    name = create_database(services)
    try:
        conninfo = services.conninfo(name)
        apply_migrations(conninfo, before)
        assert run_rollup(conninfo).full  # the first run, then the buckets are current
        assert not run_rollup(conninfo).reason
        assert [m.version for m in apply_migrations(conninfo)] == [13]
        again = run_rollup(conninfo)
        assert not again.full and again.reason == STALE_BUCKETS_REASON
        assert not run_rollup(conninfo).reason  # once
    finally:
        drop_database(services, name)
