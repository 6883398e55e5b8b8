"""Opening the configured store, and the ledger that uses it."""

from __future__ import annotations

from extproc.config import Gateway
from extproc.quota.ledger import Ledger
from extproc.quota.memory_store import MemoryStore
from extproc.quota.redis_store import RedisStore
from extproc.quota.store import QuotaStore

LEASE_MARGIN = 60.0
"""Seconds a concurrency slot outlives the longest possible request."""


def open_store(gateway: Gateway) -> QuotaStore:
    settings = gateway.quota
    if settings.store == "memory":
        return MemoryStore()
    password = settings.password.reveal() if settings.password is not None else None
    return RedisStore(settings.store, password=password, timeout=settings.timeout)


def open_ledger(gateway: Gateway) -> Ledger:
    longest = max(provider.timeout for provider in gateway.providers.values())
    return Ledger(open_store(gateway), lease=longest + LEASE_MARGIN)
