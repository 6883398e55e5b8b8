"""An external check: an HTTP endpoint that judges texts, in the shape of OpenAI's moderation
API (`POST {"input": [texts], "model"?}` → `{"results": [{"flagged": bool, "categories":
{name: bool}}]}`), so a moderation API or a self-hosted classifier fits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson
import urllib3

log = logging.getLogger(__name__)

_POOL = urllib3.PoolManager(maxsize=16, retries=False)


class Credential(Protocol):
    """A secret that prints redacted (the configuration's `Secret`)."""

    def reveal(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ExternalCheck:
    name: str
    url: str
    timeout: float
    on_error: Literal["allow", "deny"]
    model: str | None = None
    api_key: Credential | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Judgement:
    flagged: bool
    categories: tuple[str, ...] = ()
    failed: bool = False
    """The check could not be made (`flagged` then follows `on_error`)."""


async def judge(check: ExternalCheck, texts: Sequence[str]) -> Judgement:
    """Whether any of `texts` is flagged; a check that fails or is late counts as its
    `on_error` says. Runs in a thread: the event loop never waits on the endpoint."""
    if not texts:
        return Judgement(False)
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_ask, check, list(texts)), timeout=check.timeout + 0.5
        )
    except (TimeoutError, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        log.warning("guardrail check %s failed: %s", check.name, type(error).__name__)
        return Judgement(check.on_error == "deny", failed=True)


def _ask(check: ExternalCheck, texts: list[str]) -> Judgement:
    body: dict[str, object] = {"input": texts}
    if check.model is not None:
        body["model"] = check.model
    headers = {"content-type": "application/json"}
    if check.api_key is not None:
        headers["authorization"] = f"Bearer {check.api_key.reveal()}"
    answer = _POOL.request(
        "POST",
        check.url,
        body=orjson.dumps(body),
        headers=headers,
        timeout=urllib3.Timeout(total=check.timeout),
    )
    if answer.status != 200:
        raise ValueError(f"status {answer.status}")
    parsed = orjson.loads(answer.data)
    results = parsed.get("results") if isinstance(parsed, dict) else None
    if not isinstance(results, list):
        raise ValueError("no results")
    categories = sorted(
        {
            name
            for result in results
            if isinstance(result, dict)
            for name, hit in (result.get("categories") or {}).items()
            if hit is True
        }
    )
    flagged = any(isinstance(result, dict) and result.get("flagged") is True for result in results)
    return Judgement(flagged, tuple(categories))
