"""HPACK header blocks read with `hpack`, remembering those that leave the decoder's table as
it was: Envoy opens every ext_proc stream of a connection with the same block (after the
first, all of it references the table, its `:path` a Huffman-coded literal), which need not be
decoded again while the table has not changed since."""

from __future__ import annotations

from hpack import Decoder
from hpack.table import HeaderTable

Headers = list[tuple[str, str]]
REMEMBERED = 64
"""Distinct blocks kept at most (a connection's streams use one or two)."""


class _CountingTable(HeaderTable):
    """hpack's dynamic table, counting its changes (entries added, size changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined, untyped-decorator]
    def maxsize(self, new_max: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, new_max)  # type: ignore[attr-defined]


class HeaderBlocks:
    """One connection's header decoding (the table is the connection's)."""

    __slots__ = ("_decoder", "_known", "_table")

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = Decoder(max_header_list_size=max_header_list_size)
        self._table = _CountingTable()
        self._decoder.header_table = self._table
        self._known: dict[bytes, tuple[int, Headers]] = {}
        """Block → the table's change count it was decoded at, and its headers (shared: the
        caller must not change them)."""

    def decode(self, block: bytes) -> Headers:
        """The block's headers, names and values as str; raises hpack's HPACKError."""
        changes = self._table.changes
        known = self._known.get(block)
        if known is not None and known[0] == changes:
            return known[1]
        headers: Headers = self._decoder.decode(block)  # type: ignore[assignment]
        if self._table.changes == changes:  # only references: the same block reads the same
            if len(self._known) >= REMEMBERED:
                self._known.clear()
            self._known[block] = (changes, headers)
        return headers
