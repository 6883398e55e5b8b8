"""Opening the configured store, and the ledger that uses it."""

from __future__ import annotations

from extproc.quota.ledger import Ledger
from extproc.quota.memory_store import MemoryStore
from extproc.quota.redis_store import RedisStore
from extproc.quota.store import QuotaStore

LEASE_MARGIN = 60.0
"""Seconds a concurrency slot outlives the longest possible request."""


def open_store(store: str, *, password: str | None, timeout: float) -> QuotaStore:
    """`store`: `memory`, or a Redis URL (`redis://`, `rediss://`, `unix://`)."""
    if store == "memory":
        return MemoryStore()
    return RedisStore(store, password=password, timeout=timeout)


def open_ledger(store: QuotaStore, *, longest_request: float, timeout: float) -> Ledger:
    """`timeout`: how long the store may take to answer (`quota.timeout`)."""
    return Ledger(store, lease=longest_request + LEASE_MARGIN, timeout=timeout)
