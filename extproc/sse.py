"""An incremental parser for server-sent events (the WHATWG event-stream format).

Providers' chunks do not line up with events: one event may arrive in several chunks and one
chunk may hold several events. Lines may end in CRLF, LF or CR; lines starting with `:` are
comments (keep-alives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    name: str | None
    data: str


class EventParser:
    __slots__ = ("_data", "_name", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []
        self._name: str | None = None

    def feed(self, chunk: bytes, *, end: bool = False) -> list[Event]:
        """The events completed by this chunk; `end` flushes a final event without a blank line."""
        buffer = self._pending + chunk
        events: list[Event] = []
        position = 0
        for match in _LINE_END.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer) and not end:
                break  # a CR at the very end may be the first half of a CRLF
            self._line(buffer[position : match.start()], events)
            position = match.end()
        self._pending = buffer[position:]
        if end:
            if self._pending:
                self._line(self._pending, events)
                self._pending = b""
            self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append(Event(self._name, "\n".join(self._data)))
            self._data = []
            self._name = None
            return
        if line.startswith(b":"):
            return
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif field == b"event":
            self._name = value.decode("utf-8", "replace")
