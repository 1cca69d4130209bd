"""setuptools' hook for the optional compiled build; the project's metadata is in pyproject.toml.

With ``AGENTSTREAM_MYPYC=1`` the modules pyproject.toml lists under ``[tool.agentstream]
mypyc`` are compiled with mypyc (mypy must be installed in the build environment:
``python -m build --no-isolation``, or ``make compile`` for a checkout). Without it the
wheel is pure Python, and imports the same modules' source.
"""

import os
import tomllib

from setuptools import setup

ext_modules = []
if os.environ.get("AGENTSTREAM_MYPYC") == "1":
    from mypyc.build import mypycify

    with open("pyproject.toml", "rb") as f:
        listed = tomllib.load(f)["tool"]["agentstream"]["mypyc"]
    # One group: the modules share one runtime library and call each other natively.
    ext_modules = mypycify(listed, opt_level="3", group_name="agentstream._compiled")

setup(ext_modules=ext_modules)
