"""An external authorization service for tests (Envoy's ext_authz gRPC API): it looks up the
session a request carries and vouches for its user with metadata, refuses a revoked session,
and lets anything else through without a word."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from envoy_data_plane.envoy.service.auth.v3 import CheckRequest, CheckResponse, DeniedHttpResponse
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode
from envoy_data_plane.google.protobuf import ListValue, Struct, Value
from envoy_data_plane.google.rpc import Status

SESSIONS = {"session-alice": {"sub": "alice", "groups": ["ml-team"]}}
REVOKED = "session-revoked"
SESSION_HEADER = "x-session"
METHOD = "/envoy.service.auth.v3.Authorization/Check"
PERMISSION_DENIED = 7


def _value(item: Any) -> Value:
    if isinstance(item, list):
        return Value(list_value=ListValue(values=[_value(element) for element in item]))
    return Value(string_value=str(item))


def check(request: CheckRequest) -> CheckResponse:
    session = request.attributes.request.http.headers.get(SESSION_HEADER)
    if session == REVOKED:
        return CheckResponse(
            status=Status(code=PERMISSION_DENIED),
            denied_response=DeniedHttpResponse(
                status=HttpStatus(code=StatusCode.Forbidden), body="session revoked"
            ),
        )
    user = SESSIONS.get(session or "")
    metadata = Struct(fields={k: _value(v) for k, v in user.items()}) if user else None
    return CheckResponse(status=Status(code=0), dynamic_metadata=metadata)


@contextmanager
def authz_server() -> Iterator[str]:
    """The service on a free loopback port; yields its `host:port`."""
    handler = grpc.method_handlers_generic_handler(
        "envoy.service.auth.v3.Authorization",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                lambda request, _: check(request),
                request_deserializer=CheckRequest.parse,
                response_serializer=bytes,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
