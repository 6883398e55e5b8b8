"""What a counter store promises (the memory and Redis stores keep it).

Every reservation is filed under a ticket (`<owner>.<n>`, the owner being one processor) and
the store keeps what each ticket reserved, so that the operations around it are exact even
when their answers are lost:

- `reserve` is atomic across all the counters it names: every capped charge fits (with the
  room it asks for) and all are added, or nothing changes. One that reaches the store after
  its deadline, or after the ticket was cancelled, changes nothing: a processor that gave up
  waiting (a stalled or failing-over store) never leaves a phantom behind.
- `settle` sets each counter to the ticket's final cost by the difference to what the
  ticket reserved, frees its slots, and forgets the ticket: a repeat changes nothing.
- `cancel` undoes a reservation whose answer never came, if it landed at all.
- The store has an epoch, new whenever it lost its counters (a restart without
  persistence): a settlement of a ticket from an earlier epoch charges its final cost afresh
  instead of a difference to counters that no longer hold the reservation.

Every operation on a ticket names the ticket's counters, in the same order each time (the
store keeps what the ticket holds by position). A charge of 0 without a cap, or of 0 on a
holder set, leaves its counter untouched: a stream's growth names every counter of its
ticket, and charges only those its output counts against.

Two kinds of counter: amounts (requests, tokens, money in a window), and holder sets for
requests in flight, where each holder is a ticket. A holder whose owner stopped beating
(killed processor) is dropped when its slot is needed; its lease bounds it in any case.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Protocol

OWNER_TTL = 10.0
"""Seconds an owner counts as alive after its last beat (a reservation taking a slot marks it
alive too, when it is not yet): a killed processor's slots are free again this long after its
last sign of life."""


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


# Plain classes, not dataclasses: a call makes one of each per counter, and compiled code
# builds them through their own `__init__` several times faster than through the one
# `dataclasses` generates (which stays interpreted).


class Charge:
    __slots__ = ("amount", "cap", "counter", "expires_at", "in_flight", "room")

    def __init__(
        self,
        counter: str,
        amount: int,
        cap: int | None,
        expires_at: float,
        *,
        in_flight: bool = False,
        room: int = 0,
    ) -> None:
        self.counter: typing.Final = counter
        self.amount: typing.Final = amount
        self.cap: typing.Final = cap
        """Refuse if the counter would go above this; None never refuses (shadow limits)."""
        self.expires_at: typing.Final = expires_at
        """Unix seconds after which the counter (or, for a holder, its slot) may be
        forgotten."""
        self.in_flight: typing.Final = in_flight
        """A holder set: the ticket takes a slot (the amount is then 1)."""
        self.room: typing.Final = room
        """How much beyond `amount` must still fit under the cap (charged later, if at
        all)."""


class Final:
    """What a ticket finally costs on one of its counters (a holder set: its slot is freed)."""

    __slots__ = ("amount", "counter", "expires_at", "in_flight")

    def __init__(
        self, counter: str, amount: int, expires_at: float, in_flight: bool = False
    ) -> None:
        self.counter: typing.Final = counter
        self.amount: typing.Final = amount
        self.expires_at: typing.Final = expires_at
        """When the counter may be forgotten, should the settlement have to create it."""
        self.in_flight: typing.Final = in_flight


class Outcome:
    __slots__ = ("epoch", "granted", "refused", "values")

    def __init__(
        self, granted: bool, values: tuple[int, ...], refused: tuple[int, ...], epoch: str
    ) -> None:
        self.granted: typing.Final = granted
        self.values: typing.Final = values
        """Each counter after the reservation, or as found when it was refused."""
        self.refused: typing.Final = refused
        """Indexes of the charges that did not fit."""
        self.epoch: typing.Final = epoch
        """The store's epoch when the reservation was made."""


class QuotaStore(Protocol):
    def now(self) -> float:
        """The store's clock in Unix seconds (as well as the processor knows it): windows and
        deadlines are read on it, so that every replica agrees."""
        ...

    async def reserve(
        self, ticket: str, charges: Sequence[Charge], *, deadline: float, lease_end: float
    ) -> Outcome:
        """Add every charge under `ticket` if each capped one fits; otherwise change nothing.
        Reserving again under a ticket adds to it (a stream that outgrew its reservation).
        The store keeps the ticket until `lease_end`, when its request must be over. Raises
        StoreUnavailable, also when the store got it after `deadline` (both store clock)."""
        ...

    async def settle(self, ticket: str, epoch: str, finals: Sequence[Final]) -> None:
        """The ticket costs `finals`: each counter gets the difference to what the ticket
        reserved there (never going below 0, skipped if the counter is gone), its slots are
        freed, and it is forgotten. From an earlier epoch: the finals are charged in full."""
        ...

    async def cancel(self, ticket: str, charges: Sequence[Charge]) -> None:
        """Undo the ticket's reservation (`charges`, as reserved) if it landed, and refuse it
        if it is yet to land."""
        ...

    async def beat(self, owner: str) -> None:
        """Say the owner (a processor) is alive for the next `OWNER_TTL` seconds: slots held
        by tickets of an owner that stopped beating may be taken by others."""
        ...

    async def read(self, counters: Sequence[str]) -> list[int]:
        """Current values (live holders for in-flight counters); 0 when absent."""
        ...

    async def cool(self, name: str, until: float) -> None:
        """Note that `name` (a provider's model) should not be used before `until` (Unix
        seconds); a later time already noted stands."""
        ...

    async def cooling(self, names: Sequence[str]) -> list[float]:
        """Until when each name cools (0.0 when it does not)."""
        ...

    async def note(self, name: str, value: str, until: float) -> None:
        """Keep a short text under `name` until `until` (Unix seconds): facts the replicas
        share, such as which alias created a response the provider stored."""
        ...

    async def noted(self, name: str) -> str | None:
        """The text kept under `name`; None when there is none (or it expired)."""
        ...

    async def claim(self, name: str, until: float) -> bool:
        """Take `name` until `until` (Unix seconds) if nobody holds it: True for the one
        replica that does (an alert sent once across replicas)."""
        ...

    async def close(self) -> None: ...


Clock = Callable[[], float]
