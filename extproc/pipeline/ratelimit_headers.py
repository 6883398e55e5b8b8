"""The `x-ratelimit-*` response headers, spelled and formatted as OpenAI sends them."""

from __future__ import annotations

from collections.abc import Sequence

from extproc.headers import RATELIMIT_PREFIX
from extproc.quota.limits import TOKEN_METRICS
from extproc.quota.standing import Standing

_KINDS = (
    ("requests", frozenset({"requests"})),
    ("tokens", TOKEN_METRICS),
    ("tool-calls", frozenset({"tool_calls"})),
)
_NAMES = {
    kind: tuple(f"{RATELIMIT_PREFIX}{part}-{kind}" for part in ("limit", "remaining", "reset"))
    for kind, _ in _KINDS
}


def ratelimit_headers(standings: Sequence[Standing]) -> list[tuple[str, str]]:
    """Headers for the tightest request limit, the tightest token limit and the tightest
    tool-call limit (`x-ratelimit-*-tool-calls`, on MCP calls), if any."""
    headers: list[tuple[str, str]] = []
    if not standings:
        return headers
    for kind, metrics in _KINDS:
        tightest: Standing | None = None
        for standing in standings:
            if standing.limit.metric in metrics and (
                tightest is None
                or (standing.remaining, standing.resets_in)
                < (tightest.remaining, tightest.resets_in)
            ):
                tightest = standing
        if tightest is not None:
            limit, remaining, reset = _NAMES[kind]
            headers += [
                (limit, str(tightest.limit.amount)),
                (remaining, str(tightest.remaining)),
                (reset, go_duration(tightest.resets_in)),
            ]
    return headers


def go_duration(seconds: float) -> str:
    """`6m0s`, `1.5s`, `20ms`: the duration format of OpenAI's reset headers."""
    milliseconds = round(seconds * 1000)  # (whole numbers: float formatting costs more)
    if seconds < 1:
        return f"{max(0, milliseconds)}ms"
    whole, fraction = divmod(milliseconds, 1000)
    hours, rest = divmod(whole, 3600)
    minutes, rest = divmod(rest, 60)
    text = f"{rest}.{str(fraction).zfill(3).rstrip('0')}s" if fraction else f"{rest}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
