"""The in-memory counter store: one process, exact (see `store.py` for the contract).

Its counters live and die with the processor, so its epoch is the store object itself and
its only owner is the process holding it: no answer is ever lost or late here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from extproc.quota.store import Charge, Clock, Final, Outcome

SWEEP_EVERY = 1024
"""Operations between sweeps of expired counters in the memory store."""


@dataclass(slots=True)
class _Ticket:
    lease_end: float
    amounts: list[int] = field(default_factory=list)
    """What the ticket holds on each of its counters, by position."""


class MemoryStore:
    """Counters in dicts. Exact for one process; asyncio never interleaves an operation."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._epoch = uuid.uuid4().hex
        self._counters: dict[str, tuple[int, float]] = {}
        self._holders: dict[str, dict[str, float]] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._cooldowns: dict[str, float] = {}
        self._notes: dict[str, tuple[str, float]] = {}
        self._operations = 0

    def now(self) -> float:
        return self._clock()

    async def reserve(
        self, ticket: str, charges: Sequence[Charge], *, deadline: float, lease_end: float
    ) -> Outcome:
        self._maybe_sweep()
        found = [0 if _untouched(charge) else self._value(charge) for charge in charges]
        refused = tuple(
            index
            for index, (charge, value) in enumerate(zip(charges, found, strict=True))
            if charge.cap is not None
            and charge.amount + charge.room > 0
            and value + charge.amount + charge.room > charge.cap
        )
        if refused:
            return Outcome(False, tuple(found), refused, self._epoch)
        held = self._tickets.setdefault(ticket, _Ticket(lease_end))
        held.lease_end = max(held.lease_end, lease_end)
        held.amounts += [0] * (len(charges) - len(held.amounts))
        for position, (charge, value) in enumerate(zip(charges, found, strict=True)):
            if _untouched(charge):
                continue
            if charge.in_flight:
                self._holders.setdefault(charge.counter, {})[ticket] = charge.expires_at
                held.amounts[position] = 1
            else:
                self._counters[charge.counter] = (value + charge.amount, charge.expires_at)
                held.amounts[position] += charge.amount
        values = tuple(v + c.amount for v, c in zip(found, charges, strict=True))
        return Outcome(True, values, (), self._epoch)

    async def settle(self, ticket: str, epoch: str, finals: Sequence[Final]) -> None:
        held = self._tickets.pop(ticket, None)
        if held is None:
            return  # settled already (this store is never restarted under its tickets)
        for final, amount in zip(finals, held.amounts, strict=False):
            if final.in_flight:
                self._holders.get(final.counter, {}).pop(ticket, None)
            else:
                self._adjust(final.counter, final.amount - amount)

    async def cancel(self, ticket: str, charges: Sequence[Charge]) -> None:
        held = self._tickets.pop(ticket, None)
        if held is None:
            return
        for charge, amount in zip(charges, held.amounts, strict=False):
            if charge.in_flight:
                self._holders.get(charge.counter, {}).pop(ticket, None)
            else:
                self._adjust(charge.counter, -amount)

    async def beat(self, owner: str) -> None:
        """Nothing to do: the only owner is the process holding the store."""

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

    async def claim(self, name: str, until: float) -> bool:
        if await self.noted(name) is not None:
            return False
        await self.note(name, "claimed", until)
        return True

    async def close(self) -> None:
        self._counters.clear()
        self._holders.clear()
        self._tickets.clear()
        self._cooldowns.clear()
        self._notes.clear()

    def _adjust(self, counter: str, delta: int) -> None:
        entry = self._counters.get(counter)
        if entry is not None and entry[1] > self._clock() and delta:
            self._counters[counter] = (max(0, entry[0] + delta), entry[1])

    def _value(self, charge: Charge) -> int:
        now = self._clock()
        if charge.in_flight:
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
        for ticket in [name for name, held in self._tickets.items() if held.lease_end <= now]:
            del self._tickets[ticket]
        for counter, holders in list(self._holders.items()):
            for holder in [name for name, end in holders.items() if end <= now]:
                del holders[holder]
            if not holders:
                del self._holders[counter]


def _untouched(charge: Charge) -> bool:
    """A charge of nothing on a counter this call does not check (see `store.py`)."""
    return charge.amount == 0 and (charge.cap is None or charge.in_flight)
