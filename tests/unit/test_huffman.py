"""The transport's Huffman decoder against hpack's as the oracle: every string hpack's
encoder makes reads back the same, and any other bytes fail exactly where hpack's fail."""

from __future__ import annotations

from hpack.exceptions import HPACKDecodingError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman as hpack_decode
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.transport.huffman import decode_huffman

ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def outcome(decode: object, coded: bytes) -> bytes | type:
    assert callable(decode)
    try:
        result = decode(coded)
    except HPACKDecodingError:
        return HPACKDecodingError
    assert isinstance(result, bytes)
    return result


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_encoded_octets_read_back(octets: bytes) -> None:
    coded = ENCODER.encode(octets)
    assert decode_huffman(coded) == hpack_decode(coded) == octets


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_read_or_fail_as_hpack_reads_them(coded: bytes) -> None:
    assert outcome(decode_huffman, coded) == outcome(hpack_decode, coded)


def test_a_traceparent_and_bad_padding() -> None:
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert decode_huffman(ENCODER.encode(traceparent)) == traceparent
    assert outcome(decode_huffman, b"\x00") == HPACKDecodingError  # padding of zeros
    assert outcome(decode_huffman, b"\xff\xff\xff\xff") == HPACKDecodingError  # EOS
