"""Reserve before a request goes upstream, settle on its real usage afterwards.

A reservation charges the estimated cost to every counter that applies (the key's limits and
its team's, those for this model too), atomically in the store; the settlement adds the
difference between the real cost and the estimate, or refunds everything when the request did
not run. Concurrency counters are taken on reserve and given back on settle.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from extproc.quota.limits import Limit, Price
from extproc.quota.standing import QuotaRefused, QuotaStoreDown, Standing
from extproc.quota.store import Charge, Clock, Outcome, QuotaStore, StoreUnavailable
from extproc.usage import Usage

log = logging.getLogger(__name__)

EXPIRY_GRACE = 5.0
"""Seconds a counter outlives its window, so a settlement just after the end still lands."""
CONCURRENT_RETRY_AFTER = 1

StorePolicy = Literal["deny", "allow"]
STORE_ERROR_KINDS = ("deny", "allow", "settle", "extend")


@dataclass(slots=True)
class _Counted:
    limit: Limit
    counter: str
    reserved: int
    window_end: float
    cap: int | None
    holder: str | None = None
    """In-flight limits: the slot this request holds (released on settle, or by its lease)."""

    def charge(self, amount: int, expires_at: float) -> Charge:
        return Charge(self.counter, amount, self.cap, expires_at, self.holder)


class Reservation:
    """What one request holds in the store until it is settled (exactly once)."""

    def __init__(
        self,
        ledger: Ledger | None,
        *,
        counted: Sequence[_Counted],
        values: Sequence[int],
        price: Price | None,
        now: float,
        output_tokens: int = 0,
        clamped_output: int | None = None,
        decision: str = "metered",
    ) -> None:
        self._ledger = ledger
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
        growing = [item for item in self._counted if _output_cost(item, 1, self._price)]
        granted, self.spent = await self._ledger.grow(growing, extra_output, self._price)
        if granted:
            for item in growing:
                item.reserved += _output_cost(item, granted, self._price)
            self.output_tokens += granted
        return granted

    async def settle(self, usage: Usage | None) -> None:
        """Charge the real usage; None means the request did not run: refund everything."""
        ledger, self._ledger = self._ledger, None
        if ledger is None or not self._counted:
            return
        deltas = []
        releases = []
        for item in self._counted:
            if item.holder is not None:
                releases.append((item.counter, item.holder))
                continue
            final = 0 if usage is None else item.limit.cost(usage, self._price)
            if final != item.reserved:
                deltas.append((item.counter, final - item.reserved))
        await ledger.settle(deltas, releases)


class Ledger:
    def __init__(self, store: QuotaStore, *, lease: float, clock: Clock = time.time) -> None:
        self._store = store
        self._lease = lease
        """How long a concurrency slot is held at most, should its holder vanish."""
        self._clock = clock
        self.store_errors: Counter[str] = Counter(dict.fromkeys(STORE_ERROR_KINDS, 0))
        """Store failures by what followed: `deny`, `allow` (admission), `settle`, `extend`."""

    @property
    def store(self) -> QuotaStore:
        return self._store

    async def reserve(
        self,
        limits: Sequence[Limit],
        *,
        alias: str,
        price: Price | None,
        estimate: Usage,
        policy: StorePolicy,
    ) -> Reservation:
        """Reserve `estimate` in every limit for `alias`; the returned reservation may carry a
        lower output cap when a `clamp_max_tokens` limit lowered it. Raises QuotaRefused, or
        QuotaStoreDown (store down, policy deny)."""
        applicable = [limit for limit in limits if limit.applies_to(alias)]
        if not applicable:
            return UNMETERED
        now = self._clock()
        clamped = None
        try:
            counted, outcome = await self._try(applicable, price, estimate, now)
            if not outcome.granted:
                clamped = _clamped_output(counted, outcome, price, estimate)
                if clamped is None:
                    raise _refusal(counted, outcome, now)
                estimate = Usage(estimate.input_tokens, clamped)
                counted, outcome = await self._try(applicable, price, estimate, now)
                if not outcome.granted:
                    raise _refusal(counted, outcome, now)
        except StoreUnavailable as error:
            self.store_errors[policy] += 1
            return _on_store_error(policy, error)
        _report_shadow(counted, outcome.values)
        return Reservation(
            self,
            counted=counted,
            values=outcome.values,
            price=price,
            now=now,
            output_tokens=estimate.output_tokens,
            clamped_output=clamped,
        )

    async def grow(
        self, counted: Sequence[_Counted], extra: int, price: Price | None
    ) -> tuple[int, Limit | None]:
        """Add `extra` output tokens (or as many as still fit) to these counters: the tokens
        granted, and the limit that refused when none were. A store error grants them
        unreserved, since the request was already admitted."""
        if not counted:
            return extra, None
        now = self._clock()
        try:
            outcome = await self._store.reserve(_growth(counted, extra, price, now))
            if outcome.granted:
                return extra, None
            refused = counted[outcome.refused[0]].limit
            room = _clamped_output(counted, outcome, price, Usage(0, extra), clamping=False)
            if room is None:
                return 0, refused
            outcome = await self._store.reserve(_growth(counted, room, price, now))
        except StoreUnavailable as error:
            self.store_errors["extend"] += 1
            log.error("quota store unavailable (%s): stream continues unreserved", error)
            return extra, None
        if outcome.granted:
            return room, None
        return 0, counted[outcome.refused[0]].limit

    async def settle(
        self, deltas: Sequence[tuple[str, int]], releases: Sequence[tuple[str, str]]
    ) -> None:
        if not deltas and not releases:
            return
        try:
            await self._store.settle(deltas, releases)
        except StoreUnavailable as error:
            self.store_errors["settle"] += 1
            log.error("quota store unavailable (%s): a settlement was lost", error)

    async def _try(
        self, limits: Sequence[Limit], price: Price | None, estimate: Usage, now: float
    ) -> tuple[list[_Counted], Outcome]:
        counted: list[_Counted] = []
        charges: list[Charge] = []
        holder = uuid.uuid4().hex
        for limit in limits:
            amount = limit.cost(estimate, price)
            counter, end = limit.counter_at(now)
            in_flight = limit.window is None
            expiry = now + self._lease if in_flight else end + EXPIRY_GRACE
            cap = None if limit.shadow else limit.amount
            item = _Counted(limit, counter, amount, end, cap, holder if in_flight else None)
            counted.append(item)
            charges.append(item.charge(amount, expiry))
        return counted, await self._store.reserve(charges)


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
    return [
        item.charge(_output_cost(item, extra, price), max(now, item.window_end) + EXPIRY_GRACE)
        for item in counted
    ]


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
