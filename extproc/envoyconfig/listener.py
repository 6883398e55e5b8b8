"""The public listener: its HTTP connection manager and filter chain, in order."""

from __future__ import annotations

import os
from datetime import timedelta

from envoy_data_plane.envoy.config.accesslog.v3 import AccessLog
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    HttpConnectionManagerCodecType,
    HttpFilter,
)
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc.config import Gateway
from extproc.envoyconfig.access_log import envoy_access_log
from extproc.envoyconfig.clusters import socket_address
from extproc.envoyconfig.cut_reports import cut_report_loggers, failed_attempt_loggers
from extproc.envoyconfig.filters import compressor, request_decompressor
from extproc.envoyconfig.identity import (
    client_cert_details,
    ext_authz_filter,
    jwt_filter,
    listener_tls,
)
from extproc.envoyconfig.placement import Placement, report_clusters, request_filter
from extproc.envoyconfig.routes import has_fallback, local_replies, route_configuration
from extproc.envoyconfig.tracing import envoy_tracing


def _access_logs(gateway: Gateway, placement: Placement, with_processor: bool) -> list[AccessLog]:
    """Envoy's own access log, when asked for; and the processor's reports of cut calls."""
    own = envoy_access_log(gateway.telemetry.envoy_access_log)
    cuts = cut_report_loggers(report_clusters(placement)) if with_processor else []
    return [*cuts, own] if own is not None else cuts


def public_listener(gateway: Gateway, placement: Placement, with_processor: bool) -> Listener:
    # Requests pass the filters in this order, responses in the reverse one: gzip request
    # bodies are inflated before the processor reads them, and answers are compressed after
    # it for clients that accept gzip. Answers reach the processor plain because it asks
    # providers for identity (and inflates those that compress anyway itself: behind Envoy's
    # decompressor the processor never receives the response body, envoyproxy/envoy#21205).
    filters = [request_decompressor(), compressor()]
    if with_processor:
        # Who the caller is, verified before the processor reads it: tokens first, so that
        # an authorization service sees their claims.
        filters += [f for f in (jwt_filter(gateway), ext_authz_filter(gateway)) if f is not None]
        filters.append(request_filter(gateway))
    # No x-envoy-* headers towards providers or clients: they describe our internals.
    router = Router(
        suppress_envoy_headers=True,
        upstream_log=failed_attempt_loggers(report_clusters(placement))
        if with_processor and has_fallback(gateway)
        else [],
    )
    filters.append(
        HttpFilter(name="envoy.filters.http.router", typed_config=AnyMessage.pack(router))
    )
    forward_details, set_details = client_cert_details(gateway)
    manager = HttpConnectionManager(
        stat_prefix="ingress",
        forward_client_cert_details=forward_details,
        set_current_client_cert_details=set_details,
        codec_type=HttpConnectionManagerCodecType.AUTO,
        use_remote_address=True,
        normalize_path=True,
        merge_slashes=True,
        request_timeout=timedelta(seconds=gateway.listen.request_timeout),
        route_config=route_configuration(gateway, with_processor),
        http_filters=filters,
        local_reply_config=local_replies(),
        tracing=envoy_tracing(gateway.telemetry.tracing)
        if gateway.telemetry.tracing.envoy_traces(os.environ)
        else None,
        access_log=_access_logs(gateway, placement, with_processor),
    )
    return Listener(
        name="public",
        address=socket_address(gateway.listen.address, placement.port),
        per_connection_buffer_limit_bytes=gateway.listen.max_request_body,
        # A second gateway on a port already taken must fail, not silently share the traffic.
        enable_reuse_port=False,
        filter_chains=[
            FilterChain(
                transport_socket=listener_tls(gateway.listen),
                filters=[
                    Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=AnyMessage.pack(manager),
                    )
                ],
            )
        ],
    )
