"""What Envoy reports over its access-log service, by the request it is about, and the calls
waiting for theirs. With several processor workers each hears every report: a report is kept
a while for a call not (yet) seen here, and a call that never comes lets it age out."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

REPORT_WAIT = 2.0
"""Seconds a call waits for Envoy's report (Envoy sends it within about 0.1 s)."""
KEPT = 4096
"""Reports kept for calls not (yet) seen."""

T = TypeVar("T")


class Reports(Generic[T]):
    """Reports by key (a request id, or one of its attempts), and the calls waiting for
    theirs. The first report under a key is the one kept."""

    def __init__(self, wait: float = REPORT_WAIT) -> None:
        self._wait = wait
        self._known: OrderedDict[str, T] = OrderedDict()
        self._waiting: dict[str, tuple[Callable[[T | None], None], asyncio.TimerHandle]] = {}

    def report(self, key: str, value: T) -> None:
        """Envoy reports `value` about `key`."""
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            then, timer = waiting
            timer.cancel()
            then(value)
            return
        if key in self._known:
            return
        self._known[key] = value
        if len(self._known) > KEPT:
            self._known.popitem(last=False)

    def take(self, key: str) -> T | None:
        """The report about `key` if it came already."""
        return self._known.pop(key, None)

    def when_known(self, key: str, then: Callable[[T | None], None]) -> None:
        """Call `then` with the report once Envoy sends it, or with None after the wait."""
        value = self._known.pop(key, None)
        if value is not None:
            then(value)
            return
        timer = asyncio.get_running_loop().call_later(self._wait, self._give_up, key)
        self._waiting[key] = (then, timer)

    def flush(self) -> None:
        """Stop waiting (the processor is stopping): every waiting call goes on without."""
        for key in list(self._waiting):
            self._waiting[key][1].cancel()
            self._give_up(key)

    def _give_up(self, key: str) -> None:
        then, _ = self._waiting.pop(key)
        then(None)
