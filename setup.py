"""The build: pure Python, or with `EXTPROC_COMPILE=1` the hot-path modules listed in
`extproc/compiled.py` compiled by mypyc (it needs the `compile` extra installed and a C
compiler, and builds without isolation: mypyc type-checks the modules against the installed
dependencies and their stubs)."""

from __future__ import annotations

import os
import runpy

from setuptools import Extension, setup


def extensions() -> list[Extension]:
    if os.environ.get("EXTPROC_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 (only compiled builds have mypy)

    modules = runpy.run_path("extproc/compiled.py")["MODULES"]
    paths = [module.replace(".", "/") + ".py" for module in modules]
    return mypycify(paths, opt_level="3", group_name="extproc.native")


setup(ext_modules=extensions())
