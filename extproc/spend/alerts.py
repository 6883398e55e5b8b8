"""Budget alerts: a webhook told once when a money or token limit's counter crosses each
configured threshold in a window, across every replica.

Calls only mark the counters they settled against; a task reads those counters now and then
(the figure that admits and refuses calls: settled usage plus what is reserved in flight),
and for each threshold crossed claims the alert in the quota store, so that one replica sends
it. Sending is retried with backoff, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3

from extproc.config.model import AlertSettings
from extproc.quota.ledger import EXPIRY_GRACE, Reservation
from extproc.quota.limits import MICRO_USD_PER_USD, TOKEN_METRICS, Limit
from extproc.quota.store import QuotaStore, StoreUnavailable

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0
"""Seconds between two readings of the marked counters."""
SEND_BACKOFF = (1.0, 60.0)
SEND_ATTEMPTS = 8
Sender = Callable[[str, bytes, float], int]
"""(url, JSON body, timeout) → the HTTP status; raises on a failure to connect."""


@dataclass(frozen=True, slots=True)
class _Watched:
    limit: Limit
    counter: str
    window_end: float


class BudgetAlerts:
    def __init__(
        self, settings: AlertSettings, store: QuotaStore, *, sender: Sender | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._send = sender or _post
        self._marked: dict[str, _Watched] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def mark(self, reservation: Reservation) -> None:
        """The call settled: its money and token limits are read at the next check."""
        for limit, counter, window_end in reservation.windows():
            if limit.metric == "usd" or limit.metric in TOKEN_METRICS:
                self._marked[counter] = _Watched(limit, counter, window_end)

    async def run(self) -> None:
        """Check the marked counters every `CHECK_EVERY` until cancelled."""
        try:
            while True:
                await asyncio.sleep(CHECK_EVERY)
                with contextlib.suppress(StoreUnavailable):
                    await self.check()
        finally:
            for task in self._sending:
                task.cancel()

    async def check(self) -> None:
        marked, self._marked = list(self._marked.values()), {}
        if not marked:
            return
        try:
            values = await self._store.read([item.counter for item in marked])
        except StoreUnavailable:
            for item in marked:  # read again next time
                self._marked.setdefault(item.counter, item)
            raise
        for item, value in zip(marked, values, strict=True):
            for threshold in self._settings.thresholds:
                if item.limit.amount and value >= item.limit.amount * threshold:
                    await self._claim(item, threshold, value)

    async def _claim(self, item: _Watched, threshold: float, value: int) -> None:
        name = f"alert:{item.counter}:{threshold:g}"
        if await self._store.claim(name, item.window_end + EXPIRY_GRACE):
            body = orjson.dumps(_alert(item, threshold, value))
            task = asyncio.create_task(self._deliver(body, item.limit.describe(), threshold))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, body: bytes, limit: str, threshold: float) -> None:
        url, timeout = self._settings.url.reveal(), self._settings.timeout
        backoff = SEND_BACKOFF[0]
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                status = await asyncio.to_thread(self._send, url, body, timeout)
            except Exception as error:  # noqa: BLE001 - any failure to deliver is retried
                problem = type(error).__name__
            else:
                if 200 <= status < 300:
                    self.sent += 1
                    log.info("budget alert sent: %s at %g%%", limit, threshold * 100)
                    return
                problem = f"status {status}"
            if attempt < SEND_ATTEMPTS:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, SEND_BACKOFF[1])
        self.failed += 1
        log.error("budget alert not delivered (%s): %s at %g%%", problem, limit, threshold * 100)


def _alert(item: _Watched, threshold: float, value: int) -> dict[str, Any]:
    limit = item.limit
    scale = MICRO_USD_PER_USD if limit.metric == "usd" else 1
    assert limit.window is not None, "only windowed limits are marked"
    start, end = limit.window.bounds(item.window_end - 1e-3)
    return {
        "type": "budget_threshold",
        "threshold_percent": round(threshold * 100, 3),
        "percent": round(value / limit.amount * 100, 2),
        "limit": {
            "scope": limit.scope,
            "metric": limit.metric,
            "amount": limit.amount / scale,
            "per": limit.window.label,
            "model": limit.model,
            "description": limit.describe(),
        },
        "value": value / scale,
        "window": {"start": _iso(start), "end": _iso(end)},
        "time": _iso(datetime.datetime.now(datetime.UTC).timestamp()),
    }


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


_POOL = urllib3.PoolManager(retries=False)


def _post(url: str, body: bytes, timeout: float) -> int:
    response = _POOL.request(
        "POST",
        url,
        body=body,
        headers={"content-type": "application/json", "user-agent": "extproc-gateway"},
        timeout=urllib3.Timeout(total=timeout),
        redirect=False,
    )
    return int(response.status)
