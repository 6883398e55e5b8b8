"""The fault suite: each fault reproduced against real Envoy, processor and redis-server.

Cases marked `heavy` (long or load-bearing) run with `make faults` (EXTPROC_HEAVY_FAULTS=1);
the others run in `make test` too.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("EXTPROC_HEAVY_FAULTS") == "1":
        return
    skip = pytest.mark.skip(reason="heavy fault case: run `make faults`")
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)
