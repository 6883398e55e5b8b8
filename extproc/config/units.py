"""Durations (`500ms`, `2s`, `1h`, `7d`) and sizes (`512KiB`, `8MiB`, `1MB`) as written in YAML."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB|K|Ki|M|Mi|G|Gi)?$")
_SIZE_BYTES = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}
_SIZE_BYTES |= {"K": 1000, "Ki": 1024, "M": 1000**2, "Mi": 1024**2, "G": 1000**3, "Gi": 1024**3}
"""Kubernetes's spellings too (`512Mi`), as a container's memory limit is written."""


def parse_duration(value: object) -> float:
    """Seconds from a duration such as `2s`; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value.strip())):
        number, unit = match.groups()
        return float(number) * _DURATION_SECONDS[unit]
    raise ValueError("must be a duration such as 500ms, 2s, 5m, 1h or 7d")


def parse_size(value: object) -> int:
    """Bytes from a size such as `8MiB`; a bare integer is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value.strip())):
        number, unit = match.groups()
        return int(number) * _SIZE_BYTES[unit]
    raise ValueError("must be a size such as 512KiB, 8MiB or a number of bytes")


Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_size)]
