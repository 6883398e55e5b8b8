"""The protobuf wire format of the two ext_proc messages that carry whole bodies, read and
written around the body rather than through a message object.

A request body arrives in one `ProcessingRequest` and leaves, rewritten, in one
`ProcessingResponse`. Parsed and built by upb, each copy of a body crosses the Python/C
boundary twice (into the message, out of it), so a body cost several times its size in the
processor. Here a body is a view of the bytes received, and an answer is a few small pieces
of protobuf around the new body, written to the connection as they are; their header
changes are written by hand too. Anything but a body phase, and anything unexpected, is left
to upb (`None`), which tests hold this module to.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping

from google.protobuf import struct_pb2

from extproc.envoyapi.protos.envoy.config.core.v3 import base_pb2
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc

Buffer = bytes | memoryview

_REQUEST_FIELDS = {f.number: f.name for f in ext_proc.ProcessingRequest.DESCRIPTOR.fields}
_BODY_PHASES = {number: _REQUEST_FIELDS[number] for number in (4, 5)}
"""`request_body`, `response_body`: the members of the `request` oneof read here."""
_OTHER_PHASES = frozenset(
    f.number
    for f in ext_proc.ProcessingRequest.DESCRIPTOR.oneofs_by_name["request"].fields
    if f.number not in _BODY_PHASES
)
_HTTP_BODY = ext_proc.HttpBody.DESCRIPTOR.fields_by_name
_BODY, _END = _HTTP_BODY["body"].number, _HTTP_BODY["end_of_stream"].number
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_SMALL = [bytes((value,)) for value in range(0x80)]
"""Varints below 128, each one byte."""


class _Unexpected(Exception):
    """Not a message this module reads: upb decides."""


def read_body(data: memoryview) -> tuple[str, memoryview, bool] | None:
    """(phase, body, end_of_stream) of a serialised ProcessingRequest whose phase is a body,
    the body a view into `data`; None for any other message (or one to leave to upb)."""
    try:
        return _read_body(data)
    except (_Unexpected, IndexError):
        return None


def _read_body(data: memoryview) -> tuple[str, memoryview, bool] | None:
    phase: str | None = None
    body: memoryview = data[0:0]
    end = False
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, kind = tag >> 3, tag & 7
        if number in _OTHER_PHASES:
            return None
        if number in _BODY_PHASES:
            if kind != _LENGTH:
                raise _Unexpected
            size, position = _varint(data, position)
            inner = _slice(data, position, size)
            position += size
            if phase != _BODY_PHASES[number]:  # a oneof member replaces another
                phase, body, end = _BODY_PHASES[number], data[0:0], False
            body, end = _http_body(inner, body, end)  # a repeated message field merges
            continue
        position = _skip(data, position, kind)
    if phase is None:
        return None
    return phase, body, end


def _http_body(data: memoryview, body: memoryview, end: bool) -> tuple[memoryview, bool]:
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, kind = tag >> 3, tag & 7
        if number == _BODY and kind == _LENGTH:
            size, position = _varint(data, position)
            body = _slice(data, position, size)
            position += size
        elif number == _END and kind == _VARINT:
            value, position = _varint(data, position)
            end = value != 0
        elif number in (_BODY, _END):
            raise _Unexpected
        else:
            position = _skip(data, position, kind)
    return body, end


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 64:
            raise _Unexpected


def _slice(data: memoryview, position: int, size: int) -> memoryview:
    if position + size > len(data):
        raise _Unexpected
    return data[position : position + size]


def _skip(data: memoryview, position: int, kind: int) -> int:
    if kind == _VARINT:
        return _varint(data, position)[1]
    if kind == _FIXED64:
        end = position + 8
    elif kind == _FIXED32:
        end = position + 4
    elif kind == _LENGTH:
        size, position = _varint(data, position)
        end = position + size
    else:  # groups, or no wire type at all
        raise _Unexpected
    if end > len(data):
        raise _Unexpected
    return end


# Writing.

_RESPONSE_FIELDS = {f.name: f.number for f in ext_proc.ProcessingResponse.DESCRIPTOR.fields}
_BODY_RESPONSE = ext_proc.BodyResponse.DESCRIPTOR.fields_by_name["response"].number
_HEADERS_RESPONSE = ext_proc.HeadersResponse.DESCRIPTOR.fields_by_name["response"].number
_BODY_MUTATION = ext_proc.CommonResponse.DESCRIPTOR.fields_by_name["body_mutation"].number
_MUTATION_BODY = ext_proc.BodyMutation.DESCRIPTOR.fields_by_name["body"].number


_COMMON = ext_proc.CommonResponse.DESCRIPTOR.fields_by_name
_HEADER_MUTATION = _COMMON["header_mutation"].number
_CLEAR_ROUTE_CACHE = _COMMON["clear_route_cache"].number
_SET_HEADERS = ext_proc.HeaderMutation.DESCRIPTOR.fields_by_name["set_headers"].number
_REMOVE_HEADERS = ext_proc.HeaderMutation.DESCRIPTOR.fields_by_name["remove_headers"].number
_OPTION = base_pb2.HeaderValueOption.DESCRIPTOR.fields_by_name
_OPTION_HEADER, _OPTION_ACTION = _OPTION["header"].number, _OPTION["append_action"].number
_HEADER_VALUE = base_pb2.HeaderValue.DESCRIPTOR.fields_by_name
_KEY, _RAW_VALUE = _HEADER_VALUE["key"].number, _HEADER_VALUE["raw_value"].number
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def common_response(
    set_headers: Iterable[tuple[str, str]],
    remove_headers: Iterable[str] = (),
    *,
    clear_route_cache: bool = False,
) -> bytes:
    """A serialised CommonResponse that overwrites `set_headers` and removes `remove_headers`
    (written by hand: building the upb messages of a dozen headers costs more than this)."""
    mutation = b"".join(
        _bytes(_SET_HEADERS, _bytes(_OPTION_HEADER, _header_value(name, value)) + _ACTION)
        for name, value in set_headers
    ) + b"".join(_bytes(_REMOVE_HEADERS, name.encode()) for name in remove_headers)
    return _bytes(_HEADER_MUTATION, mutation) + (_CLEAR if clear_route_cache else b"")


def _header_value(name: str, value: str) -> bytes:
    key, raw = name.encode(), value.encode()
    return (_bytes(_KEY, key) if key else b"") + (_bytes(_RAW_VALUE, raw) if raw else b"")


def _bytes(number: int, content: bytes) -> bytes:
    size = len(content)
    return _TAGS[number] + (_SMALL[size] if size < 0x80 else _encode_varint(size)) + content


def body_answer(
    phase: str, common: bytes, body: Buffer, rest: ext_proc.ProcessingResponse
) -> list[Buffer]:
    """The pieces of a serialised ProcessingResponse answering a body `phase` with `common`
    (a serialised CommonResponse) and, as its body mutation, `body` (not copied); `rest`: its
    other top-level fields."""
    mutation = _field(_MUTATION_BODY, len(body))
    common_size = len(common) + _size(_BODY_MUTATION, len(mutation) + len(body))
    head = (
        _field(_RESPONSE_FIELDS[phase], _size(_BODY_RESPONSE, common_size))
        + _field(_BODY_RESPONSE, common_size)
        + common
        + _field(_BODY_MUTATION, len(mutation) + len(body))
        + mutation
    )
    return [head, body, rest.SerializeToString()]


def body_headers_answer(phase: str, common: bytes) -> list[Buffer]:
    """A serialised ProcessingResponse answering a body `phase` with `common` alone (the body
    goes on unchanged)."""
    response = _field(_BODY_RESPONSE, len(common)) + common
    return [_field(_RESPONSE_FIELDS[phase], len(response)) + response]


def headers_answer(phase: str, common: bytes, rest: bytes) -> list[Buffer]:
    """The pieces of a serialised ProcessingResponse answering a headers `phase` with `common`
    (a serialised CommonResponse); `rest`: its other top-level fields, serialised."""
    response = _field(_HEADERS_RESPONSE, len(common)) + common
    return [_field(_RESPONSE_FIELDS[phase], len(response)) + response, rest]


def _field(number: int, size: int) -> bytes:
    """The tag and length of a length-delimited field of `size` bytes."""
    return _encode_varint(number << 3 | _LENGTH) + _encode_varint(size)


def _size(number: int, size: int) -> int:
    """The bytes a length-delimited field of `size` bytes takes, tag and length included."""
    return len(_field(number, size)) + size


def _encode_varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ACTION = _encode_varint(_OPTION_ACTION << 3 | _VARINT) + _encode_varint(_OVERWRITE)
"""A HeaderValueOption's append action: overwrite the header, or add it."""
_CLEAR = _encode_varint(_CLEAR_ROUTE_CACHE << 3 | _VARINT) + b"\x01"
"""CommonResponse's clear_route_cache, set."""
_TAGS = {number: _encode_varint(number << 3 | _LENGTH) for number in range(1, 16)}
"""Length-delimited fields' tags, for the field numbers written by hand."""


_DYNAMIC_METADATA = _RESPONSE_FIELDS["dynamic_metadata"]
_STRUCT_FIELDS = struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"].number
_STRUCT_VALUE = struct_pb2.Value.DESCRIPTOR.fields_by_name["struct_value"].number
_NUMBER_TAG = _encode_varint(
    struct_pb2.Value.DESCRIPTOR.fields_by_name["number_value"].number << 3 | _FIXED64
)


def metadata_answer(namespace: str, values: Mapping[str, float]) -> bytes:
    """A serialised ProcessingResponse holding only dynamic metadata: `values` (numbers) under
    `namespace` (written by hand: a upb Struct costs several times as much)."""
    inner = b"".join(_number_prefix(name) + _DOUBLE.pack(value) for name, value in values.items())
    metadata = _bytes(_STRUCT_FIELDS, _entry(namespace, _bytes(_STRUCT_VALUE, inner)))
    return _field(_DYNAMIC_METADATA, len(metadata)) + metadata


_DOUBLE = struct.Struct("<d")


@functools.cache
def _number_prefix(name: str) -> bytes:
    """A Struct's field holding a number, all but the number's 8 bytes (the names repeat)."""
    entry = _entry(name, _NUMBER_TAG + bytes(8))
    return _bytes(_STRUCT_FIELDS, entry)[:-8]


def _entry(key: str, value: bytes) -> bytes:
    """A map entry: its key (field 1) and value (field 2)."""
    return _bytes(1, key.encode()) + _bytes(2, value)
