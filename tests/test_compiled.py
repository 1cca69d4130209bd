"""The modules pyproject.toml lists for mypyc: built from their current source, and in use.

A compiled module older than its ``.py`` would run code the source no longer says, so a
stale one fails here (``make compile`` rebuilds it). With ``AGENTSTREAM_EXPECT_COMPILED=1``
(``make test`` sets it after ``make compile``) every listed module must also be the
compiled one, so that the suite tests what the benchmarks measure.
"""

from __future__ import annotations

import importlib
import os
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))


def _listed() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        listed: list[str] = tomllib.load(f)["tool"]["agentstream"]["mypyc"]
    return listed


@pytest.mark.parametrize("source", _listed() or ["(none listed)"])
def test_compiled_module_is_current_and_in_use(source: str) -> None:
    if source == "(none listed)":
        pytest.skip("pyproject.toml lists no module for mypyc")
    path = ROOT / source
    assert path.exists(), f"pyproject.toml lists {source}, which does not exist"
    ext = path.with_suffix(SUFFIX)
    if ext.exists():
        assert ext.stat().st_mtime >= path.stat().st_mtime, (
            f"{ext.name} is older than {source}: run `make compile`"
        )
    module = importlib.import_module(source.removesuffix(".py").replace("/", "."))
    if os.environ.get("AGENTSTREAM_EXPECT_COMPILED") == "1":
        assert str(module.__file__).endswith(SUFFIX), (
            f"{module.__name__} was imported from {module.__file__}, not its compiled "
            "extension: run `make compile`"
        )
