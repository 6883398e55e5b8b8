"""The processor's side of the ledger: a row journaled as each call settles, and a task that
ships the journal to the store in batches, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable

from extproc.config.model import LedgerSettings
from extproc.spend.journal import Journal
from extproc.spend.rows import Values, row_values
from extproc.spend.stores import LedgerStore, open_ledger_store
from extproc.telemetry.record import RequestRecord

log = logging.getLogger(__name__)

SHIP_EVERY = 0.5
"""Seconds between two shipments (rows reach the store within about this)."""
ORPHANS_EVERY = 10.0
"""Seconds between two looks for journals of processes that are gone."""
PRUNE_EVERY = 3600.0
RETRY_BACKOFF = (0.5, 30.0)


class SpendLedger:
    def __init__(
        self,
        settings: LedgerSettings,
        *,
        opener: Callable[[str], LedgerStore] = open_ledger_store,
    ) -> None:
        self._settings = settings
        self._opener = opener
        self._journal = Journal(settings.journal, max_backlog=settings.max_backlog)
        self._store: LedgerStore | None = None
        self._call_ids = f"{os.urandom(8).hex()}-{{}}".format
        self._serial = itertools.count()
        self.store_errors = 0
        """Shipments the store failed (each retried)."""

    @property
    def backlog(self) -> int:
        return self._journal.backlog

    @property
    def dropped(self) -> int:
        return self._journal.dropped

    def record(self, record: RequestRecord) -> None:
        """Journal the call's row, if it has one (a model call that reached its quota)."""
        row = row_values(record, self._call_ids(next(self._serial)))
        if row is not None:
            self._journal.append(row)

    async def run(self) -> None:
        """Ship until cancelled: own rows every `SHIP_EVERY`, orphans and retention now and
        then; a failing store is retried with backoff, its rows kept in the journal."""
        backoff = RETRY_BACKOFF[0]
        orphans_due = prune_due = 0.0
        while True:
            try:
                await self._ship()
                now = time.monotonic()
                if now >= orphans_due:
                    await asyncio.to_thread(self._ship_orphans)
                    orphans_due = now + ORPHANS_EVERY
                if now >= prune_due:
                    await asyncio.to_thread(self._prune)
                    prune_due = now + PRUNE_EVERY
            except Exception as error:  # noqa: BLE001 - any driver's error: retried
                self._failed(error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_BACKOFF[1])
                continue
            backoff = RETRY_BACKOFF[0]
            await asyncio.sleep(SHIP_EVERY)

    async def close(self) -> None:
        """One last shipment; what the store does not take stays for the next process."""
        with contextlib.suppress(Exception):
            await self._ship()
        if self.backlog:
            log.warning("spend ledger: %d journal bytes left for the next start", self.backlog)
        self._journal.close()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()

    def _connected(self) -> LedgerStore:
        if self._store is None:
            store = self._opener(self._settings.store.reveal())
            store.migrate()
            self._store = store
        return self._store

    async def _ship(self) -> None:
        """The rows written since the last shipment, to the store in one transaction (in a
        thread); given back to the journal when the store fails."""
        rows, end = self._journal.take()
        try:
            if rows:
                await asyncio.to_thread(self._insert, rows)
        except BaseException:
            self._journal.back(rows)
            raise
        self._journal.shipped(end)

    def _insert(self, rows: list[Values]) -> None:
        self._connected().insert(rows)

    def _ship_orphans(self) -> None:
        while True:
            with self._journal.orphan() as orphan:
                if orphan is None:
                    return
                _, rows = orphan
                if rows:
                    self._connected().insert(rows)
                log.info("spend ledger: shipped %d rows a stopped process left", len(rows))

    def _prune(self) -> None:
        gone = self._connected().delete_before(time.time() - self._settings.retention)
        if gone:
            log.info("spend ledger: %d rows older than the retention deleted", gone)

    def _failed(self, error: Exception) -> None:
        self.store_errors += 1
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
        # The driver's message names the host, never the password; the URL is not printed.
        log.error("spend ledger: the store failed (%s); rows wait in the journal", error)
