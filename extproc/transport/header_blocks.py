"""HPACK header blocks (RFC 7541), read for the transport. hpack is the oracle (a property
test holds this reader to hpack's decoder) and supplies the static table; reading here
costs a fraction of hpack's, on three counts: Envoy opens every ext_proc stream of a
connection with the same block (after the first, all of it references the table),
remembered while the table has not changed since; its `:path` and other literals repeat,
Huffman-coded, and are decoded once (and a new one, as a `traceparent`, by compiled code);
and fields are read without intermediate objects."""

from __future__ import annotations

from collections import deque

from hpack.exceptions import (
    HPACKDecodingError,
    InvalidTableIndex,
    InvalidTableSizeError,
    OversizedHeaderListError,
)
from hpack.table import HeaderTable

from extproc.transport.huffman import decode_huffman

Headers = list[tuple[str, str]]
REMEMBERED = 64
"""Distinct blocks, and distinct Huffman-coded strings, kept at most."""
REMEMBERED_SIZE = 512
"""The largest block or string kept (Envoy's are under 300 bytes): what a connection keeps
stays a few dozen KiB, whatever its peer sends."""
ENTRY_OVERHEAD = 32
"""What RFC 7541 adds to an entry's name and value lengths in table and list sizes."""
INTEGER_BYTES = 10
"""Continuation bytes an integer may take before the block counts as malformed."""
_STATIC = tuple(
    (name.decode(), value.decode(), len(name), len(value))
    for name, value in HeaderTable.STATIC_TABLE
)
_Entry = tuple[str, str, int, int]
"""Name, value, and their lengths in bytes."""


class HeaderBlocks:
    """One connection's header decoding (the table is the connection's)."""

    __slots__ = ("_changes", "_entries", "_known", "_max_list", "_max_size", "_size", "_strings")

    def __init__(self, max_header_list_size: int) -> None:
        self._max_list = max_header_list_size
        self._entries: deque[_Entry] = deque()
        """The dynamic table, newest first."""
        self._size = 0
        self._max_size = HeaderTable.DEFAULT_SIZE
        """The table's size limit, as the peer last set it (within the 4,096 default that
        the transport's SETTINGS leave it)."""
        self._changes = 0
        """Entries added and size updates so far: a remembered block is read the same only
        while this stays."""
        self._known: dict[bytes, tuple[int, Headers]] = {}
        """Block → the change count it was read at, and its headers (shared: the caller
        must not change them)."""
        self._strings: dict[bytes, tuple[str, int]] = {}
        """Huffman-coded string → the text, and its length in bytes."""

    def decode(self, block: bytes) -> Headers:
        """The block's headers, names and values as str; raises hpack's HPACKError."""
        changes = self._changes
        known = self._known.get(block)
        if known is not None and known[0] == changes:
            return known[1]
        headers = self._read(block)
        # Only references (the table stayed): the same block reads the same while it stays.
        if self._changes == changes and len(block) <= REMEMBERED_SIZE:
            if len(self._known) >= REMEMBERED:
                self._known.clear()
            self._known[block] = (changes, headers)
        return headers

    def _read(self, block: bytes) -> Headers:
        headers: Headers = []
        listed = 0
        position, end = 0, len(block)
        while position < end:
            first = block[position]
            if first & 0x80:  # indexed field
                index, position = _integer(block, position, 7)
                name, value, name_size, value_size = self._entry(index)
            elif first & 0x20 and not first & 0x40:  # table size update
                if headers:
                    raise HPACKDecodingError("Table size update not at the start of the block")
                size, position = _integer(block, position, 5)
                if size > HeaderTable.DEFAULT_SIZE:
                    raise InvalidTableSizeError(f"Table size {size} over the 4096 allowed")
                self._resize(size)
                continue
            else:  # a literal: indexed (01), or not (0000, never 0001)
                indexing = bool(first & 0x40)
                index, position = _integer(block, position, 6 if indexing else 4)
                if index:
                    name, _, name_size, _ = self._entry(index)
                else:
                    name, name_size, position = self._string(block, position)
                value, value_size, position = self._string(block, position)
                if indexing:
                    self._add((name, value, name_size, value_size))
            headers.append((name, value))
            listed += name_size + value_size + ENTRY_OVERHEAD
            if listed > self._max_list:
                message = f"A header list larger than {self._max_list} has been received"
                raise OversizedHeaderListError(message)
        return headers

    def _entry(self, index: int) -> _Entry:
        if 0 < index <= len(_STATIC):
            return _STATIC[index - 1]
        dynamic = index - len(_STATIC) - 1
        if 0 <= dynamic < len(self._entries):
            return self._entries[dynamic]
        raise InvalidTableIndex(f"Invalid table index {index}")

    def _string(self, block: bytes, position: int) -> tuple[str, int, int]:
        """A string literal at `position`: its text, its length in bytes, where it ends."""
        if position >= len(block):
            raise HPACKDecodingError("A field ends before its string literal")
        huffman = block[position] & 0x80
        length, position = _integer(block, position, 7)
        end = position + length
        if end > len(block):
            raise HPACKDecodingError("A string literal runs past the end of the block")
        raw = block[position:end]
        if not huffman:
            return _text(raw), length, end
        known = self._strings.get(raw)
        if known is None:
            decoded = decode_huffman(raw)
            known = (_text(decoded), len(decoded))
            if length <= REMEMBERED_SIZE:
                if len(self._strings) >= REMEMBERED:
                    self._strings.clear()
                self._strings[raw] = known
        return known[0], known[1], end

    def _add(self, entry: _Entry) -> None:
        self._changes += 1
        size = entry[2] + entry[3] + ENTRY_OVERHEAD
        if size > self._max_size:  # larger than the table: it empties it
            self._entries.clear()
            self._size = 0
            return
        self._entries.appendleft(entry)
        self._size += size
        self._evict()

    def _resize(self, size: int) -> None:
        self._changes += 1
        self._max_size = size
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max_size:
            _, _, name_size, value_size = self._entries.pop()
            self._size -= name_size + value_size + ENTRY_OVERHEAD


def _integer(block: bytes, position: int, prefix: int) -> tuple[int, int]:
    """The integer with a `prefix`-bit prefix at `position`, and where it ends."""
    limit = (1 << prefix) - 1
    number = block[position] & limit
    position += 1
    if number < limit:
        return number, position
    shift = 0
    for _ in range(INTEGER_BYTES):
        if position >= len(block):
            break
        byte = block[position]
        position += 1
        number += (byte & 0x7F) << shift
        if not byte & 0x80:
            return number, position
        shift += 7
    raise HPACKDecodingError("Unable to decode HPACK integer representation")


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise HPACKDecodingError("Unable to decode headers as UTF-8") from None
