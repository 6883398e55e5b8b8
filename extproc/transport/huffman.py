"""HPACK's Huffman code (RFC 7541, appendix B), decoded here rather than by hpack's
`decode_huffman`: its table, read half a byte at a time, is hpack's, laid out in three byte
strings that compiled code indexes without building a tuple per step. Envoy sends every
stream's `traceparent` Huffman-coded and new, so a traced call decodes one each time
(hpack's pure-Python loop took ~3 % of a traced processor's time). A property test holds it
to hpack's decoder."""

from __future__ import annotations

from typing import Final

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import (
    HUFFMAN_COMPLETE,
    HUFFMAN_EMIT_SYMBOL,
    HUFFMAN_FAIL,
    HUFFMAN_TABLE,
)

_NEXT: Final = bytes(state for state, _, _ in HUFFMAN_TABLE)
"""By (state * 16 + nibble): the state after reading the nibble."""
_FLAGS: Final = bytes(flags for _, flags, _ in HUFFMAN_TABLE)
"""By (state * 16 + nibble): whether it emits a symbol, completes one, or is invalid."""
_SYMBOL: Final = bytes(symbol for _, _, symbol in HUFFMAN_TABLE)
"""By (state * 16 + nibble): the symbol emitted."""
_EMIT: Final = HUFFMAN_EMIT_SYMBOL
_FAIL: Final = HUFFMAN_FAIL
_COMPLETE: Final = HUFFMAN_COMPLETE


def decode_huffman(coded: bytes) -> bytes:
    """The octets `coded` stands for; raises hpack's HPACKDecodingError when it is not a
    valid Huffman string (an invalid code, EOS, or padding that is not a prefix of EOS)."""
    decoded = bytearray()
    state = 0
    flags = _COMPLETE  # the empty string is complete
    for position in range(2 * len(coded)):
        byte = coded[position >> 1]
        nibble = byte & 0x0F if position & 1 else byte >> 4
        index = state * 16 + nibble
        flags = _FLAGS[index]
        if flags & _FAIL:
            raise HPACKDecodingError("Invalid Huffman string")
        if flags & _EMIT:
            decoded.append(_SYMBOL[index])
        state = _NEXT[index]
    if not flags & _COMPLETE:
        raise HPACKDecodingError("Incomplete Huffman string")
    return bytes(decoded)
