"""An incremental parser for server-sent events (the WHATWG event-stream format).

Providers' chunks do not line up with events: one event may arrive in several chunks and one
chunk may hold several events. Lines may end in CRLF, LF or CR; lines starting with `:` are
comments (keep-alives). Each block (the lines up to a blank line) keeps its exact bytes, so a
relay can pass blocks on unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENT_STREAM = "text/event-stream"

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    name: str | None
    data: str


@dataclass(frozen=True, slots=True)
class Block:
    raw: bytes
    """The block's bytes as received, blank line included."""
    event: Event | None
    """None for a block without data (comments, keep-alives)."""


class EventParser:
    __slots__ = ("_data", "_name", "_pending", "_raw")

    def __init__(self) -> None:
        self._pending = b""
        self._raw: list[bytes] = []
        self._data: list[str] = []
        self._name: str | None = None

    def feed(self, chunk: bytes, *, end: bool = False) -> list[Block]:
        """The blocks completed by this chunk; `end` flushes a last block without a blank line."""
        buffer = self._pending + chunk
        blocks: list[Block] = []
        position = 0
        for match in _LINE_END.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer) and not end:
                break  # a CR at the very end may be the first half of a CRLF
            self._line(buffer[position : match.start()], buffer[position : match.end()], blocks)
            position = match.end()
        self._pending = buffer[position:]
        if end:
            if self._pending:
                self._line(self._pending, self._pending, blocks)
                self._pending = b""
            if self._raw:
                self._line(b"", b"", blocks)
        return blocks

    def _line(self, line: bytes, raw: bytes, blocks: list[Block]) -> None:
        self._raw.append(raw)
        if not line:
            event = Event(self._name, "\n".join(self._data)) if self._data else None
            blocks.append(Block(b"".join(self._raw), event))
            self._raw = []
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
