"""Reading ext_proc requests and building ext_proc responses from plain values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.type.v3 import http_status_pb2

# xds-protos ships no type stubs; these names document intent, the tests check the shapes.
ProcessingRequest: TypeAlias = Any
ProcessingResponse: TypeAlias = Any
HttpHeaders: TypeAlias = Any

REPLY_DETAILS = "extproc_"
"""Prefix of the response code details of every local reply the processor sends."""

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


def read_headers(message: HttpHeaders) -> dict[str, list[str]]:
    """Lower-case header name → every value sent for it (Envoy sends names lower-cased)."""
    headers: dict[str, list[str]] = {}
    for header in message.headers.headers:
        value = header.raw_value.decode("latin-1") if header.raw_value else header.value
        headers.setdefault(header.key, []).append(value)
    return headers


def pass_through(phase: str) -> ProcessingResponse:
    """Let this phase continue unchanged."""
    return _PASS_THROUGH[phase]


def replace_request(
    *, set_headers: Iterable[tuple[str, str]], remove_headers: Iterable[str], body: bytes
) -> ProcessingResponse:
    """Answer to a buffered request body: new headers and body, and re-pick the route."""
    mutation = ext_proc.HeaderMutation(
        set_headers=[_header(name, value) for name, value in set_headers],
        remove_headers=remove_headers,
    )
    common = ext_proc.CommonResponse(
        header_mutation=mutation,
        body_mutation=ext_proc.BodyMutation(body=body),
        clear_route_cache=True,
    )
    return ext_proc.ProcessingResponse(request_body=ext_proc.BodyResponse(response=common))


def local_reply(
    status: int, body: bytes, *, headers: Iterable[tuple[str, str]] = ()
) -> ProcessingResponse:
    """Answer the client directly with a JSON body; nothing goes upstream."""
    all_headers = [("content-type", "application/json"), *headers]
    return ext_proc.ProcessingResponse(
        immediate_response=ext_proc.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
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
