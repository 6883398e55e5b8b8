"""An incremental parser for server-sent events (the WHATWG event-stream format).

Providers' chunks do not line up with events: one event may arrive in several chunks and one
chunk may hold several events. Lines may end in CRLF, LF or CR; lines starting with `:` are
comments (keep-alives). Each block (the lines up to a blank line) keeps its exact bytes, so a
relay can pass blocks on unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENT_STREAM = "text/event-stream"
MAX_EVENT = 8 * 1024 * 1024
"""The largest event read by default (streamed images are a few MB)."""

_LF = ord("\n")


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


class EventTooLarge(Exception):
    """One event of a stream is larger than the gateway relays; `before`: what the same
    chunk completed before it."""

    def __init__(self, message: str, before: list[Any]) -> None:
        super().__init__(message)
        self.before = before


class EventParser:
    """Reads a stream as it comes, scanning each byte once whatever the events' sizes."""

    __slots__ = ("_block_size", "_data", "_limit", "_name", "_pending", "_raw", "_scanned")

    def __init__(self, limit: int = MAX_EVENT) -> None:
        """`limit`: the largest event taken (bytes); a larger one raises EventTooLarge."""
        self._limit = limit
        self._pending = bytearray()
        """Received bytes not yet read as lines."""
        self._scanned = 0
        """How much of `_pending` is known to hold no line end."""
        self._raw: list[bytes] = []
        self._block_size = 0
        self._data: list[str] = []
        self._name: str | None = None

    def feed(self, chunk: bytes, *, end: bool = False) -> list[Block]:
        """The blocks completed by this chunk; `end` flushes a last block without a blank line."""
        pending = self._pending
        pending += chunk
        blocks: list[Block] = []
        position = 0
        view = memoryview(pending)
        scan, size, newline = self._scanned, len(pending), -1
        while True:  # (finds run at memchr's speed; a regex tests each byte against a set)
            if newline < scan:
                found = pending.find(b"\n", scan)
                newline = size if found == -1 else found
            carriage = pending.find(b"\r", scan, newline)
            if carriage == -1:
                if newline == size:
                    break
                start, stop = newline, newline + 1
            elif carriage + 1 < size:
                start, stop = carriage, carriage + (2 if pending[carriage + 1] == _LF else 1)
            elif end:
                start, stop = carriage, carriage + 1
            else:
                break  # a CR at the very end may be the first half of a CRLF
            raw = bytes(view[position:stop])
            self._line(raw[: start - position], raw, blocks)
            position = scan = stop
        view.release()
        del pending[:position]
        self._scanned = len(pending) - 1 if pending.endswith(b"\r") and not end else len(pending)
        if self._block_size + len(pending) > self._limit:
            raise EventTooLarge(f"a streamed event over {self._limit} bytes", blocks)
        if end:
            if pending:
                rest = bytes(pending)
                self._line(rest, rest, blocks)
                pending.clear()
            if self._raw:
                self._line(b"", b"", blocks)
            self._scanned = 0
        return blocks

    def _line(self, line: bytes, raw: bytes, blocks: list[Block]) -> None:
        self._raw.append(raw)
        self._block_size += len(raw)
        if not line:
            event = Event(self._name, "\n".join(self._data)) if self._data else None
            blocks.append(Block(b"".join(self._raw), event))
            self._raw = []
            self._block_size = 0
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
