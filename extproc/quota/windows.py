"""Counting windows: fixed lengths aligned to the Unix epoch, or calendar days and months.

A window is fixed, not sliding: a counter belongs to one window and expires with it, which
keeps every store operation a handful of integer updates.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

Calendar = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    """As written in the configuration (`1m`, `month`), for messages and reports."""
    seconds: float | None
    """Length of a fixed window; None for calendar windows."""
    calendar: Calendar | None
    tz: ZoneInfo
    _last: list[float] = field(default_factory=list, compare=False, hash=False, repr=False)
    """The calendar window last asked for, [start, end]: every request asks again, and a
    calendar's bounds take date arithmetic in its time zone."""

    @property
    def key(self) -> str:
        """Names the window in counter names: equal windows written differently match."""
        if self.seconds is not None:
            return f"{self.seconds:g}s"
        return f"{self.calendar}@{self.tz.key}"

    def bounds(self, now: float) -> tuple[float, float]:
        """(start, end) in Unix seconds of the window that holds `now`."""
        if self.seconds is not None:
            start = math.floor(now / self.seconds) * self.seconds
            return start, start + self.seconds
        last = self._last
        if last and last[0] <= now < last[1]:
            return last[0], last[1]
        local = datetime.datetime.fromtimestamp(now, self.tz)
        if self.calendar == "day":
            first = local.date()
            following = first + datetime.timedelta(days=1)
        else:
            first = local.date().replace(day=1)
            following = (first + datetime.timedelta(days=32)).replace(day=1)
        start, end = _midnight(first, self.tz), _midnight(following, self.tz)
        last[:] = (start, end)
        return start, end


def fixed_window(seconds: float, label: str) -> Window:
    return Window(label, seconds, None, ZoneInfo("UTC"))


def calendar_window(calendar: Calendar, tz: ZoneInfo) -> Window:
    label = calendar if tz.key == "UTC" else f"{calendar} ({tz.key})"
    return Window(label, None, calendar, tz)


def _midnight(day: datetime.date, tz: ZoneInfo) -> float:
    """The first instant of `day` in `tz` (wall-clock midnight, daylight saving respected)."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=tz).timestamp()
