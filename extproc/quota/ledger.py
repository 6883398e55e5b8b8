"""Reserve before a request goes upstream, settle on its real usage afterwards.

A reservation charges the estimated cost to every counter that applies (the key's limits and
its team's, those for this model too), atomically in the store, under a ticket of its own;
the settlement charges the real cost instead, or refunds everything when the request did not
run. Concurrency counters are taken on reserve and given back on settle.

Faults lose nothing (see `store.py`): a reservation the store may have received but did not
answer in time is cancelled, a settlement the store could not take is replayed once it
answers, and a processor that dies stops beating, which frees its slots for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import typing
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from extproc.quota.limits import Limit, Price
from extproc.quota.standing import QuotaRefused, QuotaStoreDown, Standing
from extproc.quota.store import (
    Charge,
    Clock,
    Final,
    Outcome,
    QuotaStore,
    StoreUnavailable,
)
from extproc.usage import Usage

log = logging.getLogger(__name__)

EXPIRY_GRACE = 5.0
"""Seconds a counter outlives its window, so a settlement just after the end still lands."""
CONCURRENT_RETRY_AFTER = 1
BEAT_EVERY = 2.0
"""Seconds between a processor's beats (see `OWNER_TTL`)."""
REPLAY_BACKOFF = (0.2, 5.0)
"""First and longest wait (seconds) before trying the store again with what it missed."""
MAX_PENDING = 100_000
"""Settlements and cancellations kept for the store while it does not answer; beyond this
the oldest are dropped (and logged)."""

StorePolicy = Literal["deny", "allow"]
STORE_ERROR_KINDS = ("deny", "allow", "settle", "extend")


class _Counted:
    """A limit as one call counts against it: its counter now, and that window's end. (A
    plain class, as `Charge` is: a metered call makes one per limit.)"""

    __slots__ = ("cap", "counter", "limit", "window_end")

    def __init__(self, limit: Limit, counter: str, window_end: float, cap: int | None) -> None:
        self.limit: typing.Final = limit
        self.counter: typing.Final = counter
        self.window_end: typing.Final = window_end
        self.cap: typing.Final = cap

    @property
    def in_flight(self) -> bool:
        return self.limit.window is None

    def charge(self, amount: int, expires_at: float, room: int = 0) -> Charge:
        return Charge(
            self.counter, amount, self.cap, expires_at, in_flight=self.in_flight, room=room
        )


@dataclass(frozen=True, slots=True)
class _Settlement:
    ticket: str
    epoch: str
    finals: tuple[Final, ...]


@dataclass(frozen=True, slots=True)
class _Cancellation:
    ticket: str
    charges: tuple[Charge, ...]


_Pending = _Settlement | _Cancellation
"""What the store missed: a settlement, or a reservation to cancel."""


class Reservation:
    """What one request holds in the store until it is settled (exactly once)."""

    def __init__(
        self,
        ledger: Ledger | None,
        *,
        ticket: str = "",
        epoch: str = "",
        counted: Sequence[_Counted],
        values: Sequence[int],
        price: Price | None,
        now: float,
        output_tokens: int = 0,
        clamped_output: int | None = None,
        decision: str = "metered",
    ) -> None:
        self._ledger = ledger
        self._ticket = ticket
        self._epoch = epoch
        self.decision = decision
        """`metered`, `unmetered` (no limit applies) or `store_unavailable` (served anyway)."""
        self._counted = tuple(counted)
        self._price = price
        self.output_tokens = output_tokens
        """The output tokens reserved so far (an answer longer than this needs `extend`)."""
        self.clamped_output = clamped_output
        """Set when a `clamp_max_tokens` limit lowered the output the request may ask for."""
        self.spent: Limit | None = None
        """The limit that refused an `extend`."""
        self.standings = _standings(self._counted, values, now)
        """Where the request left each enforced limit (the client's rate-limit headers)."""
        self.reserved_at = now
        """When it was reserved, on the store's clock: the windows it counts in."""

    def windows(self) -> list[tuple[Limit, str, float]]:
        """Each windowed limit it counts against: the limit, its counter, when the window
        ends."""
        return [
            (item.limit, item.counter, item.window_end)
            for item in self._counted
            if item.limit.window is not None
        ]

    def reprice(self, price: Price | None) -> None:
        """Settle (and extend) at `price`: the price of the target that answered, once known."""
        if self._ledger is not None:  # the shared unmetered reservations stay as they are
            self._price = price

    async def extend(self, extra_output: int) -> int:
        """Reserve up to `extra_output` more output tokens for an answer that outgrew its
        reservation; returns how many were granted (0: a budget is spent)."""
        if self._ledger is None:  # nothing is counted: any length is fine
            self.output_tokens += extra_output
            return extra_output
        granted, self.spent = await self._ledger.grow(
            self._ticket, self._counted, extra_output, self._price
        )
        self.output_tokens += granted
        return granted

    async def settle(self, usage: Usage | None) -> None:
        """Charge the real usage; None means the request did not run: refund everything."""
        ledger, self._ledger = self._ledger, None
        if ledger is None or not self._counted:
            return
        finals = tuple(
            Final(
                item.counter,
                0 if usage is None else item.limit.cost(usage, self._price),
                item.window_end + EXPIRY_GRACE,
                item.in_flight,
            )
            for item in self._counted
        )
        await ledger.settle(_Settlement(self._ticket, self._epoch, finals))


def counting(limits: Sequence[Limit], alias: str) -> list[Limit]:
    """The limits a call to `alias` counts against (none: it is not metered)."""
    return [limit for limit in limits if limit.applies_to(alias)]


class Ledger:
    def __init__(
        self,
        store: QuotaStore,
        *,
        lease: float,
        timeout: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._lease = lease
        """How long a concurrency slot is held at most, should its holder vanish."""
        self._timeout = timeout
        """How long a reservation may take to reach the store before it is given up."""
        self._clock = clock or store.now
        self.owner = uuid.uuid4().hex[:16]
        """This processor, as the owner of its tickets (see `QuotaStore.beat`)."""
        self._serial = itertools.count()
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self.store_errors: Counter[str] = Counter(dict.fromkeys(STORE_ERROR_KINDS, 0))
        """Store failures by what followed: `deny`, `allow` (admission), `settle`, `extend`."""

    @property
    def store(self) -> QuotaStore:
        return self._store

    @property
    def pending(self) -> int:
        """Settlements and cancellations waiting for the store to answer again."""
        return len(self._pending)

    async def reserve(
        self,
        limits: Sequence[Limit],
        *,
        alias: str,
        price: Price | None,
        estimate: Usage,
        policy: StorePolicy,
        upfront_output: int | None = None,
    ) -> Reservation:
        """Reserve `estimate` in every limit for `alias`; the returned reservation may carry a
        lower output cap when a `clamp_max_tokens` limit lowered it. With `upfront_output`,
        only that much output is charged now (a stream grows its reservation as it goes),
        though the whole estimate must fit. Raises QuotaRefused, or QuotaStoreDown (store
        down, policy deny)."""
        applicable = counting(limits, alias)
        if not applicable:
            return UNMETERED
        now = self._clock()
        ticket = f"{self.owner}.{next(self._serial)}"
        clamped = None
        upfront = estimate.output_tokens if upfront_output is None else upfront_output
        counted = self._counters(applicable, now)
        charges = self._charges(counted, price, estimate, upfront, now)
        try:
            outcome = await self._reserve(ticket, charges, now)
            if not outcome.granted:
                clamped = _clamped_output(counted, outcome, price, estimate)
                if clamped is None:
                    raise _refusal(counted, outcome, now)
                estimate = Usage(estimate.input_tokens, clamped)
                upfront = min(upfront, clamped)
                charges = self._charges(counted, price, estimate, upfront, now)
                outcome = await self._reserve(ticket, charges, now)
                if not outcome.granted:
                    raise _refusal(counted, outcome, now)
        except StoreUnavailable as error:
            # The store may have taken it without the answer coming back: cancel it.
            self._keep(_Cancellation(ticket, tuple(charges)))
            self.store_errors[policy] += 1
            return _on_store_error(policy, error)
        _report_shadow(counted, outcome.values)
        return Reservation(
            self,
            ticket=ticket,
            epoch=outcome.epoch,
            counted=counted,
            values=outcome.values,
            price=price,
            now=now,
            output_tokens=upfront,
            clamped_output=clamped,
        )

    async def grow(
        self, ticket: str, counted: Sequence[_Counted], extra: int, price: Price | None
    ) -> tuple[int, Limit | None]:
        """Add `extra` output tokens (or as many as still fit) to these counters: the tokens
        granted, and the limit that refused when none were. A store error grants them
        unreserved, since the request was already admitted (and a growth that lands late
        changes nothing; one that lands in time is settled with the ticket)."""
        if not any(_output_cost(item, 1, price) for item in counted):
            return extra, None  # output counts against none of them
        now = self._clock()
        try:
            outcome = await self._reserve(ticket, _growth(counted, extra, price, now), now)
            if outcome.granted:
                return extra, None
            refused = counted[outcome.refused[0]].limit
            room = _clamped_output(counted, outcome, price, Usage(0, extra), clamping=False)
            if room is None:
                return 0, refused
            outcome = await self._reserve(ticket, _growth(counted, room, price, now), now)
        except StoreUnavailable as error:
            self.store_errors["extend"] += 1
            log.error("quota store unavailable (%s): stream continues unreserved", error)
            return extra, None
        if outcome.granted:
            return room, None
        return 0, counted[outcome.refused[0]].limit

    async def settle(self, settlement: _Settlement) -> None:
        try:
            await self._store.settle(settlement.ticket, settlement.epoch, settlement.finals)
        except StoreUnavailable as error:
            self.store_errors["settle"] += 1
            log.warning(
                "quota store unavailable (%s): the settlement is kept until it answers", error
            )
            self._keep(settlement)

    async def maintain(self) -> None:
        """Beat for this processor's tickets and give the store what it missed, until
        cancelled (one task per processor)."""
        backoff = REPLAY_BACKOFF[0]
        beat_due = 0.0
        while True:
            if time.monotonic() >= beat_due:
                beat_due = time.monotonic() + BEAT_EVERY
                with contextlib.suppress(StoreUnavailable):
                    await self._store.beat(self.owner)
            if self._pending:
                if await self._replay():
                    backoff = REPLAY_BACKOFF[0]
                    continue
                wait = backoff
                backoff = min(backoff * 2, REPLAY_BACKOFF[1])
            else:
                wait = beat_due - time.monotonic()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(wait, BEAT_EVERY)))

    async def flush(self) -> None:
        """One last try to give the store what it missed (the processor is stopping)."""
        if self._pending and not await self._replay():
            log.error(
                "quota store unavailable: %d settlements or cancellations are lost",
                len(self._pending),
            )

    def _keep(self, pending: _Pending) -> None:
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.popleft()
            log.error("quota store unavailable too long: dropped %r", dropped)
        self._pending.append(pending)
        self._wake.set()

    async def _replay(self) -> bool:
        """Hand the store what it missed, oldest first; False when it still fails."""
        while self._pending:
            pending = self._pending[0]
            try:
                if isinstance(pending, _Cancellation):
                    await self._store.cancel(pending.ticket, pending.charges)
                else:
                    await self._store.settle(pending.ticket, pending.epoch, pending.finals)
            except StoreUnavailable:
                return False
            self._pending.popleft()
        log.info("quota store answers again: what it missed is settled")
        return True

    def _counters(self, limits: Sequence[Limit], now: float) -> list[_Counted]:
        """The counters a reservation at `now` takes, in the order it names them."""
        counted = []
        for limit in limits:
            counter, end = limit.counter_at(now)
            counted.append(_Counted(limit, counter, end, None if limit.shadow else limit.amount))
        return counted

    def _charges(
        self,
        counted: Sequence[_Counted],
        price: Price | None,
        estimate: Usage,
        upfront_output: int,
        now: float,
    ) -> list[Charge]:
        """What reserving `estimate` charges each counter now (`upfront_output` of its
        output), the rest of the estimate being room that must fit."""
        upfront = Usage(estimate.input_tokens, upfront_output)
        charges = []
        for item in counted:
            amount = item.limit.cost(upfront, price)
            expiry = now + self._lease if item.in_flight else item.window_end + EXPIRY_GRACE
            charges.append(item.charge(amount, expiry, item.limit.cost(estimate, price) - amount))
        return charges

    async def _reserve(self, ticket: str, charges: Sequence[Charge], now: float) -> Outcome:
        return await self._store.reserve(
            ticket, charges, deadline=now + self._timeout, lease_end=now + self._lease
        )


def _clamped_output(
    counted: Sequence[_Counted],
    outcome: Outcome,
    price: Price | None,
    estimate: Usage,
    *,
    clamping: bool = True,
) -> int | None:
    """The output estimate that would fit when only output-bound limits refused (with
    `clamping`, only those that allow clamping); None otherwise."""
    room: list[int] = []
    for index in outcome.refused:
        item = counted[index]
        left = item.limit.output_tokens_left(outcome.values[index], estimate, price)
        if (clamping and not item.limit.clamp_max_tokens) or left is None:
            return None
        room.append(left)
    fitting = min(room)
    return fitting if 0 < fitting < estimate.output_tokens else None


def _output_cost(item: _Counted, tokens: int, price: Price | None) -> int:
    if item.limit.metric in ("requests", "concurrent"):
        return 0
    return item.limit.cost(Usage(0, tokens), price)


def _growth(
    counted: Sequence[_Counted], extra: int, price: Price | None, now: float
) -> list[Charge]:
    """`extra` output tokens on each of a ticket's counters output counts against (the others
    are named, untouched: see `store.py`)."""
    charges = []
    for item in counted:
        amount = _output_cost(item, extra, price)
        expiry = max(now, item.window_end) + EXPIRY_GRACE
        untouched = Charge(item.counter, 0, None, expiry, in_flight=item.in_flight)
        charges.append(item.charge(amount, expiry) if amount else untouched)
    return charges


def _refusal(counted: Sequence[_Counted], outcome: Outcome, now: float) -> QuotaRefused:
    refused = [counted[index] for index in outcome.refused]
    first = refused[0]
    if first.limit.metric == "concurrent":
        retry_after = CONCURRENT_RETRY_AFTER
    else:
        retry_after = max(1, math.ceil(max(item.window_end for item in refused) - now))
    return QuotaRefused(
        first.limit,
        retry_after=retry_after,
        standings=_standings(counted, outcome.values, now),
        budget=any(item.limit.metric == "usd" for item in refused),
    )


def _standings(counted: Sequence[_Counted], values: Sequence[int], now: float) -> list[Standing]:
    return [
        Standing(item.limit, value, max(0.0, item.window_end - now))
        for item, value in zip(counted, values, strict=True)
        if not item.limit.shadow and item.limit.window is not None
    ]


def _report_shadow(counted: Sequence[_Counted], values: Sequence[int]) -> None:
    for item, value in zip(counted, values, strict=True):
        if item.limit.shadow and value > item.limit.amount:
            log.warning(
                "shadow limit exceeded, request served: %s (now at %d)",
                item.limit.describe(),
                value,
            )


def _on_store_error(policy: StorePolicy, error: StoreUnavailable) -> Reservation:
    if policy == "allow":
        log.warning("quota store unavailable (%s): serving without quota (policy allow)", error)
        return STORE_UNAVAILABLE
    log.error("quota store unavailable (%s): refusing (policy deny)", error)
    raise QuotaStoreDown(str(error)) from None


UNMETERED = Reservation(None, counted=(), values=(), price=None, now=0.0, decision="unmetered")
"""Served without counting: no limit applies."""
STORE_UNAVAILABLE = Reservation(
    None, counted=(), values=(), price=None, now=0.0, decision="store_unavailable"
)
"""Served without counting: the store failed and the policy is `allow`."""
