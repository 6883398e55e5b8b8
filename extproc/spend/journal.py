"""Rows on their way to the ledger's store, in files that outlive the process.

Each process appends its rows to a segment of its own (one `write` per row, on the request
path: a killed process loses none it wrote), holding an advisory lock on it while it lives.
The shipper takes the rows appended since it last looked (kept in memory too, so that
they are not read back); a segment whose lock nobody holds
belongs to a process that is gone, and any live process ships it whole, then deletes it. A
row shipped twice is harmless: the store keeps one per call id."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from extproc.spend.rows import Values, journal_line, read_line

log = logging.getLogger(__name__)

SEGMENT_SIZE = 4 * 1024 * 1024
"""A segment shipped whole is deleted and a new one started once it reaches this size."""
SUFFIX = ".rows"


class Journal:
    def __init__(self, directory: Path, *, max_backlog: int) -> None:
        """`max_backlog`: unshipped bytes kept at most; rows beyond are dropped (counted)."""
        self._directory = directory
        self._max_backlog = max_backlog
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path, self._fd = self._open_segment()
        self._written = 0
        self._shipped = 0
        self._pending: list[Values] = []
        """The rows written and not yet taken for shipping (the file has them too)."""
        self.dropped = 0
        """Rows dropped because the store did not take them and the backlog was full."""

    @property
    def backlog(self) -> int:
        """Bytes written and not yet shipped."""
        return self._written - self._shipped

    def append(self, values: Values) -> None:
        line = journal_line(values)
        if self.backlog + len(line) > self._max_backlog:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "spend ledger: its store has not taken rows for a while; %d dropped "
                    "(journal backlog full at %d bytes)",
                    self.dropped,
                    self._max_backlog,
                )
            return
        os.write(self._fd, line)
        self._written += len(line)
        self._pending.append(values)

    def take(self) -> tuple[list[Values], int]:
        """The rows written since the last `take`, and where they end in the segment (for
        `shipped`; or give them `back` when the store did not take them)."""
        rows, self._pending = self._pending, []
        return rows, self._written

    def back(self, rows: list[Values]) -> None:
        """Rows the store did not take: they go first in the next `take`."""
        self._pending[:0] = rows

    def shipped(self, end: int) -> None:
        """The store has the own rows up to `end` (as `take` said); start a new segment when
        this one is full and all shipped."""
        self._shipped = end
        if end == self._written and end >= SEGMENT_SIZE:
            old_path, old_fd = self._path, self._fd
            self._path, self._fd = self._open_segment()
            self._written = self._shipped = 0
            old_path.unlink(missing_ok=True)
            os.close(old_fd)

    @contextlib.contextmanager
    def orphan(self) -> Iterator[tuple[Path, list[Values]] | None]:
        """A segment left by a process that is gone, held while it is shipped (None: there is
        none); deleted when the block ends without an error."""
        for path in sorted(self._directory.glob("*" + SUFFIX)):
            if path == self._path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # shipped by another process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its process is alive
            try:
                with os.fdopen(fd, "rb", closefd=False) as file:
                    rows = _rows(file.read())
                yield path, rows
                path.unlink(missing_ok=True)
                return
            finally:
                os.close(fd)
        yield None

    def close(self) -> None:
        """Stop writing; what was not shipped stays for the next process to ship."""
        os.close(self._fd)

    def _open_segment(self) -> tuple[Path, int]:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        opening = self._directory / f"{name}.opening"
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = opening.with_suffix(SUFFIX)
        opening.rename(path)  # seen by others only once it is locked
        return path, fd


def _rows(data: bytes) -> list[Values]:
    rows = []
    for line in data.splitlines():
        row = read_line(line)
        if row is not None:
            rows.append(row)
        elif line:
            log.warning("spend ledger: a journal line is not a whole row; skipped")
    return rows
