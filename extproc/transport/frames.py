"""HTTP/2 framing (RFC 9113 §4, §6) and the few header blocks a gRPC server writes.

Header blocks are written as HPACK literals without indexing (RFC 7541 §6.2.2) and the
`:status 200` static entry: they never touch the dynamic table, so one precomputed block
serves every connection whatever table size the peer sets.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final
from urllib.parse import quote

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_SIZE = 9
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
MAX_FRAME_LIMIT = 2**24 - 1


class Kind:
    """Frame types (RFC 9113 §6)."""

    DATA: Final = 0
    HEADERS: Final = 1
    PRIORITY: Final = 2
    RST_STREAM: Final = 3
    SETTINGS: Final = 4
    PUSH_PROMISE: Final = 5
    PING: Final = 6
    GOAWAY: Final = 7
    WINDOW_UPDATE: Final = 8
    CONTINUATION: Final = 9


class Flag:
    END_STREAM: Final = 0x1
    ACK: Final = 0x1
    END_HEADERS: Final = 0x4
    PADDED: Final = 0x8
    PRIORITY: Final = 0x20


class Setting:
    ENABLE_PUSH: Final = 2
    MAX_CONCURRENT_STREAMS: Final = 3
    INITIAL_WINDOW_SIZE: Final = 4
    MAX_FRAME_SIZE: Final = 5
    MAX_HEADER_LIST_SIZE: Final = 6


class ErrorCode(IntEnum):
    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 5
    FRAME_SIZE_ERROR = 6
    REFUSED_STREAM = 7
    COMPRESSION_ERROR = 9
    ENHANCE_YOUR_CALM = 11


class ProtocolError(Exception):
    """The peer broke HTTP/2: the connection ends with GOAWAY carrying `code`."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return frame_header(kind, flags, stream_id, len(payload)) + payload


def frame_header(kind: int, flags: int, stream_id: int, size: int) -> bytes:
    """The 9 bytes that start a frame of `size` bytes."""
    return bytes((size >> 16, (size >> 8) & 0xFF, size & 0xFF, kind, flags)) + stream_id.to_bytes(
        4, "big"
    )


def settings(values: dict[int, int]) -> bytes:
    payload = b"".join(
        key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in values.items()
    )
    return frame(Kind.SETTINGS, 0, 0, payload)


def parse_settings(payload: bytes | memoryview) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length is not a multiple of 6")
    return [
        (int.from_bytes(payload[i : i + 2], "big"), int.from_bytes(payload[i + 2 : i + 6], "big"))
        for i in range(0, len(payload), 6)
    ]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(Kind.WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def rst_stream(stream_id: int, code: ErrorCode) -> bytes:
    return frame(Kind.RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def goaway(last_stream_id: int, code: ErrorCode) -> bytes:
    return frame(Kind.GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big"))


def unpad(flags: int, payload: memoryview) -> memoryview:
    """The frame's content without its padding (DATA, HEADERS)."""
    if not flags & Flag.PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def header_fragment(flags: int, payload: memoryview) -> memoryview:
    """A HEADERS frame's header block fragment: padding and priority fields removed."""
    content = unpad(flags, payload)
    if flags & Flag.PRIORITY:
        if len(content) < 5:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        return content[5:]
    return content


def _integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 §5.1); `first` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A header field as an HPACK literal without indexing, new name, no Huffman coding."""
    return b"\x00" + _integer(len(name), 7) + name + _integer(len(value), 7) + value


RESPONSE_HEADERS = b"\x88" + literal(b"content-type", b"application/grpc")
"""`:status 200` (static table entry 8) and the gRPC content type."""

MAX_STATUS_MESSAGE = 1024


def trailers(status: int, message: str = "") -> bytes:
    """The trailing fields of a call; `message` percent-encoded as gRPC asks."""
    block = literal(b"grpc-status", str(status).encode())
    if message:
        encoded = quote(message[:MAX_STATUS_MESSAGE], safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
        block += literal(b"grpc-message", encoded.encode())
    return block
