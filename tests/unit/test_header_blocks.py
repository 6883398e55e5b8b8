"""The transport's header-block reader against hpack's own decoder as the oracle: the same
blocks, in the same order, read the same, whatever the encoder did to its table (indexing,
never indexing, Huffman or not, table size updates, evictions), and malformed blocks fail
alike."""

from __future__ import annotations

from hpack import Decoder, Encoder
from hpack.exceptions import HPACKError
from hpack.struct import NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.transport.header_blocks import HeaderBlocks

LIMIT = 2048
"""Small enough that some header lists go over it."""
names = st.sampled_from([":method", ":path", ":authority", "te", "content-type", "x-a", "x-b"])
values = st.sampled_from(["POST", "/svc/Process", "a", "b", "trailers", "x" * 300, "", "é ü 字"])
field = st.tuples(names, values, st.booleans())
block_steps = st.lists(
    st.one_of(
        st.lists(field, min_size=1, max_size=6),
        st.integers(0, 4096),  # a table size update before the next block
        st.just("again"),  # the previous block, sent again
        st.binary(min_size=1, max_size=40),  # not HPACK at all, most likely
    ),
    min_size=1,
    max_size=40,
)


def encoded(encoder: Encoder, headers: list[tuple[str, str, bool]], huffman: bool) -> bytes:
    fields = [
        NeverIndexedHeaderTuple(name, value) if never else (name, value)
        for name, value, never in headers
    ]
    return encoder.encode(fields, huffman=huffman)


@settings(max_examples=1000, deadline=None)
@given(block_steps, st.booleans())
def test_blocks_read_as_hpack_reads_them(steps: list[object], huffman: bool) -> None:
    encoder = Encoder()
    oracle = Decoder(max_header_list_size=LIMIT)
    blocks = HeaderBlocks(LIMIT)
    last: bytes | None = None
    for step in steps:
        if isinstance(step, int):
            encoder.header_table_size = step
            continue
        if isinstance(step, bytes):
            block = step
        elif step == "again":
            if last is None:
                continue
            block = last
        else:
            assert isinstance(step, list)
            block = encoded(encoder, step, huffman)
        last = block
        expected, read = outcome(oracle, block), outcome(blocks, block)
        assert read == expected
        if isinstance(expected, type):  # malformed, or resent after the table moved on
            return


def outcome(decoder: Decoder | HeaderBlocks, block: bytes) -> object:
    """The headers, or that it failed."""
    try:
        return decoder.decode(block)
    except HPACKError:
        return HPACKError


def test_a_block_of_references_is_read_once_while_the_table_stays() -> None:
    encoder = Encoder()
    oracle = Decoder(max_header_list_size=LIMIT)
    blocks = HeaderBlocks(LIMIT)
    headers = [(":method", "POST"), (":path", "/svc/Process"), ("te", "trailers")]
    first = encoder.encode(headers)
    second = encoder.encode(headers)  # all references now
    assert blocks.decode(first) == oracle.decode(first) == headers
    read = blocks.decode(second)
    assert read == oracle.decode(second) == headers
    assert blocks.decode(second) is read  # not decoded again
    # An entry added to the table shifts what the same references mean: read anew.
    added = encoder.encode([("x-new", "1")])
    assert blocks.decode(added) == oracle.decode(added)
    again = blocks.decode(second)
    assert again is not read and again == oracle.decode(second)
