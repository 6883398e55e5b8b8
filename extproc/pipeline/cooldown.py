"""Cooldowns: how long a throttled provider asks to be left alone (read from its answer's
headers), and where an alias with fallback starts while some of its targets cool."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping

from extproc import headers as names
from extproc.config import ModelRoute, Target
from extproc.errors import RateLimited
from extproc.quota.store import QuotaStore, StoreUnavailable
from extproc.telemetry.requests import Telemetry

log = logging.getLogger(__name__)

THROTTLED = 429

_GO_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


def cooldown_seconds(headers: Mapping[str, list[str]]) -> float | None:
    """`Retry-After` in seconds, else the longest `x-ratelimit-reset-*` (OpenAI's `6m0s`,
    `20ms`); None when the answer says nothing usable."""
    retry_after = headers.get(names.RETRY_AFTER)
    if retry_after:
        try:
            return max(0.0, float(retry_after[0]))
        except ValueError:
            pass  # an HTTP date: rare from these APIs, and a reset header may follow
    resets = [
        _go_seconds(values[0]) for name in names.RATELIMIT_RESETS if (values := headers.get(name))
    ]
    known = [seconds for seconds in resets if seconds is not None]
    return max(known) if known else None


async def note_throttling(
    store: QuotaStore,
    telemetry: Telemetry,
    target: Target,
    status: int | None,
    headers: Mapping[str, list[str]],
) -> None:
    """A throttling answer with a wait puts its target in cooldown (in the quota store, so
    that every replica sees it)."""
    if status != THROTTLED:
        return
    seconds = cooldown_seconds(headers)
    if not seconds:
        return
    name = cooldown_name(target)
    try:
        await store.cool(name, time.time() + seconds)
    except StoreUnavailable as error:
        log.warning("cooldown of %s not noted: %s", name, error)
    else:
        telemetry.note_cooldown(name)


def _go_seconds(text: str) -> float | None:
    match = _GO_DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def cooldown_name(target: Target) -> str:
    """What cools: a provider's model (another model of the same provider may not be
    throttled)."""
    return f"{target.provider.name}/{target.model}"


async def first_level_not_cooling(store: QuotaStore, route: ModelRoute) -> int:
    """The first priority level with a target not cooling down after throttling; when every
    target cools, the client learns when the first recovers and nothing is sent."""
    targets = [target for target in route.targets if target.weight]
    try:
        untils = await store.cooling([cooldown_name(target) for target in targets])
    except StoreUnavailable:
        return 0  # cooldowns are advice: without the store, every target is tried
    now = time.time()
    for start, level in enumerate(route.priorities):
        if any(
            until <= now
            for target, until in zip(targets, untils, strict=True)
            if target.priority == level
        ):
            return start
    wait = max(1, math.ceil(min(untils) - now))
    raise RateLimited(
        f"Every provider of '{route.alias}' is throttling; retry after {wait} s.",
        code="providers_throttled",
        headers=[(names.RETRY_AFTER, str(wait))],
    )
