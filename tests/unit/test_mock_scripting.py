"""The mock's scripting headers are listed in one place: what a gateway must forward for a
test to script the mock through it."""

from __future__ import annotations

import re
from pathlib import Path

from mockprovider import SCRIPT_HEADERS

MOCK = Path(__file__).resolve().parents[2] / "mock-provider" / "mockprovider"


def test_every_header_the_mock_reads_is_listed() -> None:
    read = {
        name
        for path in MOCK.glob("*.py")
        for name in re.findall(r"x-mock-[a-z-]+[a-z]", path.read_text())
    }
    assert read == set(SCRIPT_HEADERS)
