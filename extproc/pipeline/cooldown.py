"""How long a throttled provider asks to be left alone, read from its answer's headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

from extproc import headers as names

_GO_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)
RESET_HEADERS = (names.RATELIMIT_PREFIX + "reset-requests", names.RATELIMIT_PREFIX + "reset-tokens")


def cooldown_seconds(headers: Mapping[str, list[str]]) -> float | None:
    """`Retry-After` in seconds, else the longest `x-ratelimit-reset-*` (OpenAI's `6m0s`,
    `20ms`); None when the answer says nothing usable."""
    retry_after = headers.get(names.RETRY_AFTER)
    if retry_after:
        try:
            return max(0.0, float(retry_after[0]))
        except ValueError:
            pass  # an HTTP date: rare from these APIs, and a reset header may follow
    resets = [_go_seconds(values[0]) for name in RESET_HEADERS if (values := headers.get(name))]
    known = [seconds for seconds in resets if seconds is not None]
    return max(known) if known else None


def _go_seconds(text: str) -> float | None:
    match = _GO_DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000
