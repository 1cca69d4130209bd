"""Compile the hot modules listed in pyproject.toml ([tool.agentstream] mypyc) with mypyc, in place.

The compiled modules are the same source as the ``.py`` beside them, built into C extensions
that Python imports instead of it (a module runs 1.2-2x faster without a line changed; see
BENCHMARKS.md). Without them everything still works: the ``.py`` is imported. A compiled
module older than its source would hide an edit, so this script rebuilds whenever a source
is newer than its extension, and ``tests/test_compiled.py`` fails on a stale one.

    python scripts/compile.py           # build what is missing or stale
    python scripts/compile.py --clean   # remove the extensions (back to pure Python)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))


def compiled_sources() -> list[Path]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        listed = tomllib.load(f)["tool"]["agentstream"]["mypyc"]
    return [ROOT / p for p in listed]


def extension_of(source: Path) -> Path:
    return source.with_suffix(SUFFIX)


def stale(sources: list[Path]) -> list[Path]:
    """The sources whose extension is missing or older than the source."""
    return [
        s
        for s in sources
        if not extension_of(s).exists() or extension_of(s).stat().st_mtime < s.stat().st_mtime
    ]


def remove_extensions(sources: list[Path]) -> None:
    """Remove every extension under agentstream/ (only compiled modules of ours live there)
    but those of ``sources`` and, when there are any, the group's shared runtime library
    (setup.py names it): an extension of a module no longer listed would shadow its source."""
    keep = {extension_of(s) for s in sources}
    for path in (ROOT / "agentstream").rglob(f"*{SUFFIX}"):
        if path not in keep and not (sources and "__mypyc" in path.name):
            path.unlink()


def build() -> None:
    """setup.py's compiled build, in place (extensions beside their sources)."""
    env = {**os.environ, "AGENTSTREAM_MYPYC": "1"}
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    cmd += ["--build-temp", "build/mypyc"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled extensions")
    args = parser.parse_args()
    sources = compiled_sources()
    if args.clean:
        remove_extensions([])
        return
    remove_extensions(sources)
    todo = stale(sources)
    if not todo:
        return
    # The modules are compiled together (one group): rebuild them all when any changed.
    print(f"compiling {len(sources)} module(s) with mypyc ({len(todo)} new or changed)...")
    build()
    # A module's own extension is a shim into the group's shared library; setuptools keeps
    # an unchanged shim with its old mtime, which would read as stale after an edit that
    # only changed the shared library. The build succeeded for the whole group: mark them.
    for source in sources:
        if extension_of(source).exists():
            os.utime(extension_of(source))
    if left := stale(sources):
        sys.exit(f"mypyc left these uncompiled: {', '.join(map(str, left))}")


if __name__ == "__main__":
    main()
