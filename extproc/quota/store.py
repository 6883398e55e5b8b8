"""Counter stores: the contract, and the in-memory store (one process, exact).

Every operation is atomic across all the counters it names: a reservation either fits in
every capped counter and is added to all of them, or changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Charge:
    counter: str
    amount: int
    cap: int | None
    """Refuse if the counter would go above this; None never refuses (shadow limits)."""
    expires_at: float
    """Unix seconds after which the counter may be forgotten."""


@dataclass(frozen=True, slots=True)
class Outcome:
    granted: bool
    values: tuple[int, ...]
    """Each counter after the reservation, or as found when it was refused."""
    refused: tuple[int, ...]
    """Indexes of the charges that did not fit."""


class QuotaStore(Protocol):
    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        """Add every charge if each capped one fits; otherwise change nothing."""
        ...

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        """Add (or with a negative delta, refund) to counters that still exist; never below 0."""
        ...

    async def read(self, counters: Sequence[str]) -> list[int]:
        """Current values; 0 for counters that do not exist."""
        ...

    async def close(self) -> None: ...


Clock = Callable[[], float]

SWEEP_EVERY = 1024
"""Operations between sweeps of expired counters in the memory store."""


class MemoryStore:
    """Counters in a dict. Exact for one process; asyncio never interleaves an operation."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, float]] = {}
        self._operations = 0

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        self._maybe_sweep()
        found = [self._value(charge.counter) for charge in charges]
        refused = tuple(
            index
            for index, (charge, value) in enumerate(zip(charges, found, strict=True))
            if charge.cap is not None and value + charge.amount > charge.cap
        )
        if refused:
            return Outcome(False, tuple(found), refused)
        values = []
        for charge, value in zip(charges, found, strict=True):
            self._counters[charge.counter] = (value + charge.amount, charge.expires_at)
            values.append(value + charge.amount)
        return Outcome(True, tuple(values), ())

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        for counter, delta in deltas:
            entry = self._counters.get(counter)
            if entry is not None and entry[1] > self._clock():
                self._counters[counter] = (max(0, entry[0] + delta), entry[1])

    async def read(self, counters: Sequence[str]) -> list[int]:
        return [self._value(counter) for counter in counters]

    async def close(self) -> None:
        self._counters.clear()

    def _value(self, counter: str) -> int:
        entry = self._counters.get(counter)
        if entry is None or entry[1] <= self._clock():
            return 0
        return entry[0]

    def _maybe_sweep(self) -> None:
        self._operations += 1
        if self._operations % SWEEP_EVERY:
            return
        now = self._clock()
        for counter in [name for name, (_, expiry) in self._counters.items() if expiry <= now]:
            del self._counters[counter]
