"""Reading ext_proc requests and building ext_proc responses from plain values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, cast

from google.protobuf import struct_pb2

from extproc.compiled import as_buffer
from extproc.contract import IDENTITY_METADATA, REPLY_DETAILS, SHARED_METADATA
from extproc.envoyapi.protos.envoy.config.core.v3 import base_pb2
from extproc.envoyapi.protos.envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.envoyapi.protos.envoy.type.v3 import http_status_pb2
from extproc.envoyapi.wire import (
    Buffer,
    body_answer,
    body_headers_answer,
    common_response,
    headers_answer,
    metadata_answer,
    read_body,
)
from extproc.headers import CONTENT_TYPE

ProcessingRequest = ext_proc.ProcessingRequest
ProcessingResponse = ext_proc.ProcessingResponse
HttpHeaders = ext_proc.HttpHeaders


_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

_PASS_THROUGH = {
    "request_headers": ext_proc.ProcessingResponse(request_headers=ext_proc.HeadersResponse()),
    "response_headers": ext_proc.ProcessingResponse(response_headers=ext_proc.HeadersResponse()),
    "request_body": ext_proc.ProcessingResponse(request_body=ext_proc.BodyResponse()),
    "response_body": ext_proc.ProcessingResponse(response_body=ext_proc.BodyResponse()),
    "request_trailers": ext_proc.ProcessingResponse(request_trailers=ext_proc.TrailersResponse()),
    "response_trailers": ext_proc.ProcessingResponse(response_trailers=ext_proc.TrailersResponse()),
}
"""The 'change nothing' answer for each phase; responses are only read, so one of each serves."""


Headers = dict[str, list[str]]
"""Lower-case header name → every value sent for it (Envoy sends names lower-cased)."""


ATTRIBUTES = "envoy.filters.http.ext_proc"
"""The namespace Envoy sends attributes under."""
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_NO_IDENTITY: Mapping[str, Mapping[str, Any]] = MappingProxyType({})


class Message:
    """One ext_proc message as the processor reads it. A plain class, not a dataclass: the
    processor makes several a call, and compiled code builds one ten times faster through its
    own `__init__` than through the one `dataclasses` generates (which stays interpreted)."""

    __slots__ = ("attributes", "body", "end_of_stream", "headers", "phase", "shared", "verified")

    def __init__(
        self,
        phase: str,
        headers: Headers,
        body: Buffer,
        end_of_stream: bool,
        *,
        attributes: Mapping[str, str] = _NO_ATTRIBUTES,
        shared: Mapping[str, str] = _NO_ATTRIBUTES,
        verified: Mapping[str, Mapping[str, Any]] = _NO_IDENTITY,
    ) -> None:
        self.phase: Final = phase
        """`request_headers`, `request_body`, `response_headers`, `response_body` or a
        trailers phase."""
        self.headers: Final = headers
        """The headers, for a headers phase (else empty)."""
        self.body: Final = body
        """The body (or this chunk of it), for a body phase: a request body is a view of the
        bytes received (parse it, do not keep it)."""
        self.end_of_stream: Final = end_of_stream
        """Nothing follows in this direction (a headers phase: the HTTP message has no
        body)."""
        self.attributes: Final = attributes
        """The string attributes Envoy sent with a headers phase (`request_attributes`,
        `response_attributes`), by expression."""
        self.shared: Final = shared
        """The `SHARED_METADATA` Envoy forwarded with a headers phase."""
        self.verified: Final = verified
        """What Envoy verified of the caller, by metadata namespace (`IDENTITY_METADATA`):
        the `jwt_authn` filter's claims of a token (under the issuer's name) or why it
        refused one; what an authorization service vouched for."""


_HEADER_PHASES = frozenset(("request_headers", "response_headers"))
_BODY_PHASES = frozenset(("request_body", "response_body"))


@dataclass(frozen=True, slots=True)
class WrittenAnswer:
    """An answer serialised by hand (around its body, which is not copied, for a body
    phase): building the upb messages of a dozen headers costs more."""

    pieces: list[Buffer]


Answer = ProcessingResponse | WrittenAnswer | list[ProcessingResponse]
"""What the processor sends Envoy for one message (several answers to a streamed chunk
whose bytes would not fit one)."""


@dataclass(frozen=True, slots=True)
class Partial:
    """The first part of the answer to a message, sent at once; the rest is worked out after
    (a stream's first event reaches the client without waiting for the events read with it)."""

    first: Answer


def read_wire(data: memoryview) -> Message:
    """A serialised ProcessingRequest as the processor reads it (raises DecodeError)."""
    body = read_body(data)
    if body is None:
        return read_message(ProcessingRequest.FromString(as_buffer(data)))
    phase, content, end = body
    if phase == "response_body":  # kept by the meter, read by several parts: its own bytes
        return Message(phase, {}, bytes(content), end)
    return Message(phase, {}, content, end)


def read_message(request: ProcessingRequest) -> Message:
    phase = request.WhichOneof("request")
    if phase is None:
        raise ValueError("ProcessingRequest carries no phase")
    if phase in _HEADER_PHASES:
        message = getattr(request, phase)
        attributes = shared = _NO_ATTRIBUTES
        verified: dict[str, Mapping[str, Any]] = {}
        if request.attributes:
            attributes = _strings(request.attributes[ATTRIBUTES])
        if request.HasField("metadata_context"):
            namespaces = request.metadata_context.filter_metadata
            if SHARED_METADATA in namespaces:
                shared = _strings(namespaces[SHARED_METADATA])
            for namespace in IDENTITY_METADATA:
                if namespace in namespaces:
                    verified[namespace] = _struct(namespaces[namespace])
        headers = read_headers(message)
        return Message(
            phase,
            headers,
            b"",
            message.end_of_stream,
            attributes=attributes,
            shared=shared,
            verified=verified,
        )
    if phase in _BODY_PHASES:
        body = getattr(request, phase)
        return Message(phase, {}, body.body, body.end_of_stream)
    return Message(phase, {}, b"", True)


def _struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {name: _value(value) for name, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def _strings(struct: struct_pb2.Struct) -> dict[str, str]:
    return {name: value.string_value for name, value in struct.fields.items()}


def read_headers(message: HttpHeaders) -> Headers:
    headers: Headers = {}
    for header in message.headers.headers:
        value = header.raw_value.decode("latin-1") if header.raw_value else header.value
        headers.setdefault(header.key, []).append(value)
    return headers


def pass_through(phase: str) -> ProcessingResponse:
    """Let this phase continue unchanged."""
    return _PASS_THROUGH[phase]


def replace_request(
    *,
    set_headers: Iterable[tuple[str, str]],
    remove_headers: Iterable[str],
    body: bytes,
    shared: Mapping[str, str] | None = None,
) -> WrittenAnswer:
    """Answer to a buffered request body: new headers and body, and re-pick the route;
    `shared`: values for later filters' streams (`SHARED_METADATA`)."""
    common = common_response(set_headers, remove_headers, clear_route_cache=True)
    rest = ext_proc.ProcessingResponse()
    if shared:
        rest.dynamic_metadata.update({SHARED_METADATA: dict(shared)})
    return WrittenAnswer(body_answer("request_body", common, body, rest))


_MODE = processing_mode_pb2.ProcessingMode
_READ_RESPONSE = _MODE(
    request_body_mode=_MODE.BUFFERED,
    response_header_mode=_MODE.SEND,
    response_body_mode=_MODE.BUFFERED_PARTIAL,
)
"""Buffer the request body, then see the response: headers, and a JSON body up to the body
limit (a larger one passes unread rather than failing)."""
_RESPONSE_BODY_MODES = {
    "relay": _MODE(response_body_mode=_MODE.FULL_DUPLEX_STREAMED, response_trailer_mode=_MODE.SEND),
    "whole": _MODE(response_body_mode=_MODE.BUFFERED),
    "skip": _MODE(response_body_mode=_MODE.NONE),
}
"""`relay`: event streams — every chunk comes to the processor, which sends the client's bytes
back (and can end the response early: Envoy then ends it downstream and resets the upstream).
`whole`: a body the processor rewrites (a translated answer, an error): all of it at once,
with the response headers held until it is done. `skip`: a body the processor cannot read
goes to the client untouched."""
ResponseBodyMode = Literal["relay", "whole", "skip"]
_BODY_MODE_OVERRIDES = {
    mode: ext_proc.ProcessingResponse(mode_override=override).SerializeToString()
    for mode, override in _RESPONSE_BODY_MODES.items()
}


def continue_and_read_response() -> ProcessingResponse:
    """Answer to request headers: go on, and send this request's response phases too."""
    return ext_proc.ProcessingResponse(
        request_headers=ext_proc.HeadersResponse(), mode_override=_READ_RESPONSE
    )


def replace_request_headers(
    *, set_headers: Iterable[tuple[str, str]], remove_headers: Iterable[str]
) -> ProcessingResponse:
    """Answer to the headers of a request without a body: new headers, re-pick the route,
    and send this request's response phases too."""
    mutation = ext_proc.HeaderMutation(
        set_headers=[_header(name, value) for name, value in set_headers],
        remove_headers=remove_headers,
    )
    common = ext_proc.CommonResponse(header_mutation=mutation, clear_route_cache=True)
    return ext_proc.ProcessingResponse(
        request_headers=ext_proc.HeadersResponse(response=common), mode_override=_READ_RESPONSE
    )


def amend_response_headers(
    set_headers: Iterable[tuple[str, str]],
    *,
    remove_headers: Iterable[str] = (),
    body: ResponseBodyMode | None = None,
) -> WrittenAnswer:
    """Answer to the response headers: change headers, and how the body comes (None: read
    as it is, up to the body limit)."""
    common = common_response(set_headers, remove_headers)
    rest = b"" if body is None else _BODY_MODE_OVERRIDES[body]
    return WrittenAnswer(headers_answer("response_headers", common, rest))


def relay_body(body: bytes, *, end: bool) -> ProcessingResponse:
    """Answer to a full-duplex streamed body chunk: what the client gets for it."""
    streamed = ext_proc.StreamedBodyResponse(body=body, end_of_stream=end)
    mutation = ext_proc.BodyMutation(streamed_response=streamed)
    return ext_proc.ProcessingResponse(
        response_body=ext_proc.BodyResponse(
            response=ext_proc.CommonResponse(body_mutation=mutation)
        )
    )


def relay_bodies(body: bytes, *, end: bool, limit: int) -> Answer:
    """Answer to a full-duplex streamed body chunk, in as many answers as keep each within
    `limit` bytes of body (Envoy refuses a message over its receive limit)."""
    if len(body) <= limit:
        return relay_body(body, end=end)
    view = memoryview(body)
    starts = range(0, len(body), limit)
    return [
        relay_body(bytes(view[start : start + limit]), end=end and start == starts[-1])
        for start in starts
    ]


def replace_response_body(
    body: bytes, *, set_headers: Iterable[tuple[str, str]] = ()
) -> WrittenAnswer:
    """Answer to a whole response body: send this body instead (and change headers, which
    are still held)."""
    common = common_response(set_headers)
    return WrittenAnswer(body_answer("response_body", common, body, ext_proc.ProcessingResponse()))


def amend_held_headers(set_headers: Iterable[tuple[str, str]]) -> WrittenAnswer:
    """Answer to a whole response body: keep it, and change the headers held with it."""
    return WrittenAnswer(body_headers_answer("response_body", common_response(set_headers)))


def with_metadata(answer: Answer, namespace: str, values: Mapping[str, float]) -> Answer:
    """`answer` also setting Envoy's dynamic metadata (numbers under `namespace`) for the
    filters and access logs after the processor. (Serialised messages concatenate as a
    merge.)"""
    extra = metadata_answer(namespace, values)
    if isinstance(answer, list):
        last = ProcessingResponse.FromString(answer[-1].SerializeToString() + extra)
        return [*answer[:-1], last]
    if isinstance(answer, WrittenAnswer):
        return WrittenAnswer([*answer.pieces, extra])
    return WrittenAnswer([answer.SerializeToString(), extra])


def local_reply(
    status: int, body: bytes, *, headers: Iterable[tuple[str, str]] = ()
) -> ProcessingResponse:
    """Answer the client directly with a JSON body; nothing goes upstream."""
    all_headers = [(CONTENT_TYPE, "application/json"), *headers]
    return ext_proc.ProcessingResponse(
        immediate_response=ext_proc.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=cast(http_status_pb2.StatusCode, status)),
            headers=ext_proc.HeaderMutation(
                set_headers=[_header(name, value) for name, value in all_headers]
            ),
            body=body,
            details=f"{REPLY_DETAILS}{status}",
        )
    )


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, raw_value=value.encode()),
        append_action=_OVERWRITE,
    )
