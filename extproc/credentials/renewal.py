"""Renewing credentials in a thread: one renewal at a time, while callers keep using the
credentials they have (a request never waits on a token endpoint)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundRenewal:
    __slots__ = ("_lock", "_renew", "_running")

    def __init__(self, renew: Callable[[], None]) -> None:
        self._renew = renew
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        """Start a renewal, unless one is running."""
        with self._lock:
            start, self._running = not self._running, True
        if start:
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            self._renew()
        finally:
            with self._lock:
                self._running = False
