"""What a counter store promises (the memory and Redis stores keep it).

Every operation is atomic across all the counters it names: a reservation either fits in
every capped counter and is added to all of them, or changes nothing.

Two kinds of counter: amounts (requests, tokens, money in a window), and holder sets for
requests in flight, where each holder is one request with its own lease. A holder that
vanishes (its processor killed) frees its slot when its lease ends, whatever else happens.
"""

from __future__ import annotations

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
    """Unix seconds after which the counter (or, for a holder, its slot) may be forgotten."""
    holder: str | None = None
    """For in-flight counters: the request taking a slot (the amount is then 1)."""


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

    async def settle(
        self, deltas: Sequence[tuple[str, int]], releases: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Add (or with a negative delta, refund) to amount counters that still exist, never
        below 0; and free the (counter, holder) slots in `releases`."""
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

    async def close(self) -> None: ...


Clock = Callable[[], float]
