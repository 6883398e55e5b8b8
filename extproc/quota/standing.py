"""Where a request leaves each enforced limit: what the rate-limit headers report."""

from __future__ import annotations

import typing

from extproc.quota.limits import Limit


class Standing:
    """One enforced limit's state after a request was counted (or refused). A plain class:
    a metered call makes one per limit, and compiled code builds it through its own
    `__init__` several times faster than through the interpreted one `dataclasses` makes."""

    __slots__ = ("limit", "resets_in", "used")

    def __init__(self, limit: Limit, used: int, resets_in: float) -> None:
        self.limit: typing.Final = limit
        self.used: typing.Final = used
        self.resets_in: typing.Final = resets_in

    @property
    def remaining(self) -> int:
        return max(0, self.limit.amount - self.used)


class QuotaRefused(Exception):
    """A limit refused the request; nothing was reserved."""

    def __init__(
        self, limit: Limit, *, retry_after: int, standings: list[Standing], budget: bool
    ) -> None:
        super().__init__(limit.describe())
        self.limit = limit
        """The first limit that refused."""
        self.retry_after = retry_after
        """Seconds until the refusing limits' windows end (a slot, for concurrency)."""
        self.standings = standings
        self.budget = budget
        """A money budget is among the refusing limits."""


class QuotaStoreDown(Exception):
    """The quota store cannot be reached and the policy is to refuse."""
