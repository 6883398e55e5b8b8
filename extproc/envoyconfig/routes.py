"""Routes: one per provider (chosen by the processor's routing header), aliases with
fallback, and Envoy's own error replies as OpenAI-style JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Protocol

from envoy_data_plane.envoy.config.accesslog.v3 import (
    AccessLogFilter,
    AndFilter,
    ComparisonFilter,
    ExtensionFilter,
    StatusCodeFilter,
)
from envoy_data_plane.envoy.config.accesslog.v3 import ComparisonFilterOp as Op
from envoy_data_plane.envoy.config.core.v3 import (
    DataSource,
    HeaderValue,
    HeaderValueOption,
    RuntimeUInt32,
    SubstitutionFormatString,
)
from envoy_data_plane.envoy.config.route.v3 import (
    DirectResponseAction,
    HeaderMatcher,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    VirtualHost,
)
from envoy_data_plane.envoy.extensions.access_loggers.filters.cel.v3 import ExpressionFilter
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    LocalReplyConfig,
    ResponseMapper,
)
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc import headers
from extproc.config import Gateway
from extproc.contract import MCP_PREFIX, REPLY_DETAILS
from extproc.envoyconfig.fallback import (
    alias_routes,
)
from extproc.errors import (
    INTERNAL_ERROR,
    BadRequest,
    GatewayError,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

JSON = "application/json"
INVALID_REQUEST, SERVER_ERROR = -32600, -32603
"""JSON-RPC error codes of Envoy's own replies on MCP paths."""


def has_fallback(gateway: Gateway) -> bool:
    return any(route.retry for route in gateway.models.values())


def route_configuration(gateway: Gateway, with_processor: bool) -> RouteConfiguration:
    # Aliases with fallback need the processor on each attempt: plain Envoy has none.
    routes = [
        alias_route
        for route in gateway.models.values()
        if route.retry is not None and with_processor
        for alias_route in alias_routes(route, route.retry)
    ]
    # A JSON answer says nothing until it is whole: the connection manager's stream idle
    # timeout (300 s) must not end it before the provider's timeout. Streams that stall are
    # ended by the processor (`idle_timeout`); an MCP server's GET stream may stay quiet long.
    routes += [
        _upstream_route(provider.name, provider.name, provider.cluster, provider)
        for provider in gateway.providers.values()
    ]
    routes += [
        _upstream_route(server.cluster, server.route, server.cluster, server)
        for server in gateway.mcp_servers.values()
    ]
    # Reached only when the processor chose no provider, which it never does for a model call.
    unrouted = NotFound("No provider serves this request.", code="unknown_url")
    routes.append(
        Route(
            name="unrouted",
            match=RouteMatch(prefix="/"),
            direct_response=DirectResponseAction(
                status=unrouted.status, body=DataSource(inline_string=unrouted.to_body().decode())
            ),
            response_headers_to_add=[_response_header(headers.CONTENT_TYPE, JSON)],
        )
    )
    fallback = with_processor and has_fallback(gateway)
    return RouteConfiguration(
        name="llm",
        virtual_hosts=[
            VirtualHost(
                name="llm",
                domains=["*"],
                routes=routes,
                # The attempts behind an answer, for the access log (removed from it there),
                # and each attempt's number, for its span (removed before it goes upstream).
                include_attempt_count_in_response=fallback,
                include_request_attempt_count=fallback,
            )
        ],
        # The routing header is the gateway's own, and the client address Envoy notes for
        # itself is nobody else's business: neither leaves with the request.
        request_headers_to_remove=[
            headers.ROUTE,
            headers.ENVOY_EXTERNAL_ADDRESS,
            headers.FORWARDED_PROTO,
        ],
    )


class _Reached(Protocol):
    @property
    def timeout(self) -> float: ...
    @property
    def authority(self) -> str: ...


def _upstream_route(name: str, value: str, cluster: str, upstream: _Reached) -> Route:
    """The route to `cluster` for requests whose routing header the processor set to `value`."""
    return Route(
        name=name,
        match=RouteMatch(
            prefix="/",
            headers=[HeaderMatcher(name=headers.ROUTE, string_match=StringMatcher(exact=value))],
        ),
        route=RouteAction(
            cluster=cluster,
            timeout=timedelta(seconds=upstream.timeout),
            idle_timeout=timedelta(seconds=upstream.timeout),
            host_rewrite_literal=upstream.authority,
        ),
    )


def local_replies() -> LocalReplyConfig:
    """Envoy's own error replies (text/plain) get OpenAI-style JSON bodies; statuses stay."""
    bodies: list[tuple[int, GatewayError]] = [
        (413, PayloadTooLarge("The request body is larger than the gateway accepts.")),
        (400, BadRequest("The request is malformed.")),
        (408, BadRequest("The request was not received in time.", code="request_timeout")),
        (431, BadRequest("The request headers are too large.", code="headers_too_large")),
        (
            503,
            ServiceUnavailable(
                "The gateway cannot process requests right now.", code="gateway_unavailable"
            ),
        ),
        (504, GatewayTimeout("The gateway or the provider did not answer in time.")),
        (500, INTERNAL_ERROR),
    ]
    # The processor's replies carry details `extproc_<status>`; only Envoy's own are rewritten,
    # as JSON-RPC errors on the paths of MCP servers, as OpenAI's elsewhere.
    from_envoy = f"!response.code_details.startsWith('{REPLY_DETAILS}')"
    on_mcp = f"request.path.startsWith('{MCP_PREFIX}')"
    mappers = []
    for path_rule, shape in ((f"{from_envoy} && {on_mcp}", _json_rpc), (from_envoy, _openai)):
        mappers += [
            ResponseMapper(
                filter=_all_of(_status_is(status), _cel(path_rule)),
                body_format_override=SubstitutionFormatString(
                    text_format_source=DataSource(inline_string=shape(error)), content_type=JSON
                ),
            )
            for status, error in bodies
        ]
    return LocalReplyConfig(mappers=mappers)


def _openai(error: GatewayError) -> str:
    return error.to_body().decode()


def _json_rpc(error: GatewayError) -> str:
    code = INVALID_REQUEST if error.status < 500 else SERVER_ERROR
    message = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": error.message}}
    return json.dumps(message)


def _status_is(status: int) -> AccessLogFilter:
    return AccessLogFilter(
        status_code_filter=StatusCodeFilter(
            comparison=ComparisonFilter(
                op=Op.EQ, value=RuntimeUInt32(default_value=status, runtime_key="unused")
            )
        )
    )


def _cel(expression: str) -> AccessLogFilter:
    return AccessLogFilter(
        extension_filter=ExtensionFilter(
            name="envoy.access_loggers.extension_filters.cel",
            typed_config=AnyMessage.pack(ExpressionFilter(expression=expression)),
        )
    )


def _all_of(*filters: AccessLogFilter) -> AccessLogFilter:
    return AccessLogFilter(and_filter=AndFilter(filters=list(filters)))


def _response_header(name: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=name, value=value))
