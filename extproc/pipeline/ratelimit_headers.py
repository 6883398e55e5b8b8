"""The `x-ratelimit-*` response headers, spelled and formatted as OpenAI sends them."""

from __future__ import annotations

from collections.abc import Sequence

from extproc.headers import RATELIMIT_PREFIX
from extproc.quota.limits import TOKEN_METRICS
from extproc.quota.standing import Standing


def ratelimit_headers(standings: Sequence[Standing]) -> list[tuple[str, str]]:
    """Headers for the tightest request limit, the tightest token limit and the tightest
    tool-call limit (`x-ratelimit-*-tool-calls`, on MCP calls), if any."""
    headers: list[tuple[str, str]] = []
    kinds = (("requests", {"requests"}), ("tokens", TOKEN_METRICS), ("tool-calls", {"tool_calls"}))
    for kind, metrics in kinds:
        candidates = [s for s in standings if s.limit.metric in metrics]
        if not candidates:
            continue
        tightest = min(candidates, key=lambda s: (s.remaining, s.resets_in))
        headers += [
            (f"{RATELIMIT_PREFIX}limit-{kind}", str(tightest.limit.amount)),
            (f"{RATELIMIT_PREFIX}remaining-{kind}", str(tightest.remaining)),
            (f"{RATELIMIT_PREFIX}reset-{kind}", go_duration(tightest.resets_in)),
        ]
    return headers


def go_duration(seconds: float) -> str:
    """`6m0s`, `1.5s`, `20ms`: the duration format of OpenAI's reset headers."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
