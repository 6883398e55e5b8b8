"""The in-memory counter store: one process, exact (see `store.py` for the contract)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from extproc.quota.store import Charge, Clock, Outcome

SWEEP_EVERY = 1024
"""Operations between sweeps of expired counters in the memory store."""


class MemoryStore:
    """Counters in dicts. Exact for one process; asyncio never interleaves an operation."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, float]] = {}
        self._holders: dict[str, dict[str, float]] = {}
        self._cooldowns: dict[str, float] = {}
        self._notes: dict[str, tuple[str, float]] = {}
        self._operations = 0

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        self._maybe_sweep()
        found = [self._value(charge) for charge in charges]
        refused = tuple(
            index
            for index, (charge, value) in enumerate(zip(charges, found, strict=True))
            if charge.cap is not None and value + charge.amount > charge.cap
        )
        if refused:
            return Outcome(False, tuple(found), refused)
        for charge, value in zip(charges, found, strict=True):
            if charge.holder is not None:
                self._holders.setdefault(charge.counter, {})[charge.holder] = charge.expires_at
            else:
                self._counters[charge.counter] = (value + charge.amount, charge.expires_at)
        return Outcome(True, tuple(v + c.amount for v, c in zip(found, charges, strict=True)), ())

    async def settle(
        self, deltas: Sequence[tuple[str, int]], releases: Sequence[tuple[str, str]] = ()
    ) -> None:
        now = self._clock()
        for counter, delta in deltas:
            entry = self._counters.get(counter)
            if entry is not None and entry[1] > now:
                self._counters[counter] = (max(0, entry[0] + delta), entry[1])
        for counter, holder in releases:
            self._holders.get(counter, {}).pop(holder, None)

    async def read(self, counters: Sequence[str]) -> list[int]:
        now = self._clock()
        values = []
        for counter in counters:
            if counter in self._holders:
                values.append(sum(1 for end in self._holders[counter].values() if end > now))
            else:
                entry = self._counters.get(counter)
                values.append(entry[0] if entry is not None and entry[1] > now else 0)
        return values

    async def cool(self, name: str, until: float) -> None:
        self._cooldowns[name] = max(until, self._cooldowns.get(name, 0.0))

    async def cooling(self, names: Sequence[str]) -> list[float]:
        now = self._clock()
        return [until if (until := self._cooldowns.get(name, 0.0)) > now else 0.0 for name in names]

    async def note(self, name: str, value: str, until: float) -> None:
        self._maybe_sweep()
        self._notes[name] = (value, until)

    async def noted(self, name: str) -> str | None:
        value, until = self._notes.get(name, ("", 0.0))
        return value if until > self._clock() else None

    async def close(self) -> None:
        self._counters.clear()
        self._holders.clear()
        self._cooldowns.clear()
        self._notes.clear()

    def _value(self, charge: Charge) -> int:
        now = self._clock()
        if charge.holder is not None:
            holders = self._holders.get(charge.counter, {})
            for holder in [name for name, end in holders.items() if end <= now]:
                del holders[holder]
            return len(holders)
        entry = self._counters.get(charge.counter)
        return entry[0] if entry is not None and entry[1] > now else 0

    def _maybe_sweep(self) -> None:
        self._operations += 1
        if self._operations % SWEEP_EVERY:
            return
        now = self._clock()
        for counter in [name for name, (_, expiry) in self._counters.items() if expiry <= now]:
            del self._counters[counter]
        for name in [name for name, (_, until) in self._notes.items() if until <= now]:
            del self._notes[name]
        for counter, holders in list(self._holders.items()):
            for holder in [name for name, end in holders.items() if end <= now]:
                del holders[holder]
            if not holders:
                del self._holders[counter]
