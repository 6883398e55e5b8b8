"""How much of messages larger than a stream window the server takes in at once.

A message that fits a stream's window arrives without any credit; a larger one (a big
request body) needs credit as it arrives, and every byte credited is memory the server
holds until the handler is done with the message. The budget admits such messages while
their sizes fit under its limit, oldest request first, and keeps the rest waiting — they
stop at their stream's window, and the client stops sending them — until an admitted
message's handler is done. One message larger than the whole limit is admitted when
nothing else is, so no size that passed the message limit waits forever.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class Admittable(Protocol):
    def admit(self) -> None: ...


class Budget:
    __slots__ = ("_limit", "_waiting", "used")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.used = 0
        """Bytes admitted and not yet released."""
        self._waiting: OrderedDict[Admittable, int] = OrderedDict()

    def request(self, caller: Admittable, size: int) -> None:
        """Admit `size` bytes for `caller` now (calling its `admit`) or when they fit."""
        if not self._waiting and self._fits(size):
            self.used += size
            caller.admit()
        else:
            self._waiting[caller] = size

    def withdraw(self, caller: Admittable) -> None:
        """`caller` no longer waits (its stream ended)."""
        self._waiting.pop(caller, None)

    def release(self, size: int) -> None:
        """Bytes admitted earlier are free again: admit whoever now fits, in order."""
        if not size:
            return
        self.used -= size
        while self._waiting:
            caller, wanted = next(iter(self._waiting.items()))
            if not self._fits(wanted):
                break
            del self._waiting[caller]
            self.used += wanted
            caller.admit()

    def _fits(self, size: int) -> bool:
        return self.used + size <= self._limit or not self.used
