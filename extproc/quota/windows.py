"""Counting windows: fixed lengths aligned to the Unix epoch, or calendar days and months.

A window is fixed, not sliding: a counter belongs to one window and expires with it, which
keeps every store operation a handful of integer updates.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
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
        local = datetime.datetime.fromtimestamp(now, self.tz)
        if self.calendar == "day":
            first = local.date()
            following = first + datetime.timedelta(days=1)
        else:
            first = local.date().replace(day=1)
            following = (first + datetime.timedelta(days=32)).replace(day=1)
        return _midnight(first, self.tz), _midnight(following, self.tz)


def fixed_window(seconds: float, label: str) -> Window:
    return Window(label, seconds, None, ZoneInfo("UTC"))


def calendar_window(calendar: Calendar, tz: ZoneInfo) -> Window:
    label = calendar if tz.key == "UTC" else f"{calendar} ({tz.key})"
    return Window(label, None, calendar, tz)


def _midnight(day: datetime.date, tz: ZoneInfo) -> float:
    """The first instant of `day` in `tz` (wall-clock midnight, daylight saving respected)."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=tz).timestamp()
