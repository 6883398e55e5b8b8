"""The Envoy bootstrap: public listener with the ext_proc filter, processor and provider clusters.

Built from typed envoy-data-plane classes so that a wrong field name fails here, not in Envoy;
`envoy --mode validate` checks the rendered result in the tests.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import betterproto2
from envoy_data_plane.envoy.config.accesslog.v3 import (
    AccessLogFilter,
    AndFilter,
    ComparisonFilter,
    ExtensionFilter,
    StatusCodeFilter,
)
from envoy_data_plane.envoy.config.accesslog.v3 import ComparisonFilterOp as Op
from envoy_data_plane.envoy.config.bootstrap.v3 import (
    Admin,
    Bootstrap,
    BootstrapStaticResources,
    LayeredRuntime,
    RuntimeLayer,
)
from envoy_data_plane.envoy.config.cluster.v3 import (
    CircuitBreakers,
    CircuitBreakersThresholds,
    Cluster,
    ClusterDiscoveryType,
    ClusterDnsLookupFamily,
    ClusterTransportSocketMatch,
)
from envoy_data_plane.envoy.config.common.mutation_rules.v3 import HeaderMutationRules
from envoy_data_plane.envoy.config.core.v3 import (
    Address,
    DataSource,
    GrpcService,
    GrpcServiceEnvoyGrpc,
    HeaderValue,
    HeaderValueOption,
    Http1ProtocolOptions,
    Http2ProtocolOptions,
    Node,
    Pipe,
    RuntimeFeatureFlag,
    RuntimeUInt32,
    SocketAddress,
    SubstitutionFormatString,
    TransportSocket,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
from envoy_data_plane.envoy.config.overload.v3 import OverloadManager, ResourceMonitor
from envoy_data_plane.envoy.config.route.v3 import (
    DirectResponseAction,
    HeaderMatcher,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    VirtualHost,
)
from envoy_data_plane.envoy.config.trace.v3 import OpenTelemetryConfig, TracingHttp
from envoy_data_plane.envoy.extensions.access_loggers.filters.cel.v3 import ExpressionFilter
from envoy_data_plane.envoy.extensions.compression.gzip.compressor.v3 import Gzip as GzipCompressor
from envoy_data_plane.envoy.extensions.compression.gzip.decompressor.v3 import (
    Gzip as GzipDecompressor,
)
from envoy_data_plane.envoy.extensions.filters.http.compressor.v3 import Compressor
from envoy_data_plane.envoy.extensions.filters.http.decompressor.v3 import (
    Decompressor,
    DecompressorCommonDirectionConfig,
    DecompressorRequestDirectionConfig,
    DecompressorResponseDirectionConfig,
)
from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import (
    ExternalProcessor,
    MetadataOptions,
    MetadataOptionsMetadataNamespaces,
    ProcessingMode,
    ProcessingModeBodySendMode,
    ProcessingModeHeaderSendMode,
)
from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    HttpConnectionManagerCodecType,
    HttpConnectionManagerTracing,
    HttpFilter,
    LocalReplyConfig,
    ResponseMapper,
)
from envoy_data_plane.envoy.extensions.resource_monitors.downstream_connections.v3 import (
    DownstreamConnectionsConfig,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    SubjectAltNameMatcher,
    SubjectAltNameMatcherSanType,
    TlsCertificate,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
    HttpProtocolOptions,
    HttpProtocolOptionsAutoHttpConfig,
    HttpProtocolOptionsExplicitHttpConfig,
)
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.envoy.type.v3 import HttpStatus, Percent, StatusCode
from envoy_data_plane.google.protobuf import Any as AnyMessage
from envoy_data_plane.google.protobuf import Struct, Value

from extproc import headers
from extproc.config import Gateway, Provider
from extproc.config.address import parse_grpc_address
from extproc.config.model import ProcessorTls, TracingSettings
from extproc.contract import (
    EXT_AUTHZ_METADATA,
    JWT_METADATA,
    REPLY_DETAILS,
    SHARED_METADATA,
)
from extproc.envoyconfig.cut_reports import cut_report_loggers
from extproc.envoyconfig.fallback import (
    TLS_MATCH,
    alias_clusters,
    alias_routes,
    without_attempt_count,
)
from extproc.envoyconfig.identity import (
    EXT_AUTHZ_CLUSTER,
    client_cert_details,
    ext_authz_filter,
    jwks_sources,
    jwt_filter,
    listener_tls,
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

PROCESSOR_CLUSTER = "extproc"
COLLECTOR_CLUSTER = "otel_collector"
DEFAULT_COLLECTOR = "http://127.0.0.1:4317"
MAX_DOWNSTREAM_CONNECTIONS = 50_000
BREAKER_LIMIT = 1_000_000
"""Every HTTP request is one stream to the processor: never let a breaker refuse those."""
JSON = "application/json"
ENVOY_SPAN_BATCH = 256
"""Spans an Envoy worker sends in one export call, at most (Envoy's default: 5)."""
ENVOY_SPAN_FLUSH_MS = 500
"""How long a span may wait for its batch (the processor's export delay too)."""
MAX_INFLATE_RATIO = 1032
"""The most Envoy's gzip decompressor allows (its default, 100, cuts highly repetitive bodies
short and hands the processor a partial one)."""


@dataclass(frozen=True)
class Placement:
    """Where this Envoy listens and finds its processor; differs between `run` and Kubernetes."""

    port: int
    admin_port: int
    processor_addresses: tuple[str, ...]


def placement_of(gateway: Gateway) -> Placement:
    """The placement the configuration file itself asks for."""
    return Placement(
        port=gateway.listen.port,
        admin_port=gateway.listen.admin_port,
        processor_addresses=tuple(gateway.processor.worker_addresses()),
    )


def build_bootstrap(
    gateway: Gateway, placement: Placement, *, with_processor: bool = True
) -> Bootstrap:
    """The whole bootstrap; `with_processor=False` gives plain Envoy (the benchmark baseline)."""
    numbered = with_processor and _has_fallback(gateway)
    clusters = [_provider_cluster(p, numbered) for p in gateway.providers.values()]
    clusters += _identity_clusters(gateway)
    if with_processor:
        tls = gateway.processor.tls
        clusters.append(_processor_cluster(PROCESSOR_CLUSTER, placement.processor_addresses, tls))
        if len(placement.processor_addresses) > 1:
            clusters += [
                _processor_cluster(name, (address,), tls)
                for name, address in zip(
                    _report_clusters(placement), placement.processor_addresses, strict=True
                )
            ]
        clusters += _alias_clusters(gateway)
    tracing = gateway.telemetry.tracing.active(os.environ)
    if tracing:
        clusters.append(_collector_cluster(gateway.telemetry.tracing))
    return Bootstrap(
        layered_runtime=_span_batching() if tracing else None,
        node=Node(id="extproc-gateway", cluster="extproc-gateway"),
        admin=Admin(address=_socket_address("127.0.0.1", placement.admin_port)),
        static_resources=BootstrapStaticResources(
            listeners=[_listener(gateway, placement, with_processor)], clusters=clusters
        ),
        overload_manager=OverloadManager(
            resource_monitors=[
                ResourceMonitor(
                    name="envoy.resource_monitors.global_downstream_max_connections",
                    typed_config=AnyMessage.pack(
                        DownstreamConnectionsConfig(
                            max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS
                        )
                    ),
                )
            ]
        ),
    )


def render(bootstrap: Bootstrap) -> dict[str, Any]:
    """The bootstrap as a plain dict with proto field names, ready for YAML or JSON."""
    rendered: dict[str, Any] = _proto_names(bootstrap.to_dict(casing=betterproto2.Casing.SNAKE))
    return rendered


_MISSPELT = {
    "consecutive_5_xx": "consecutive_5xx",
    "enforcing_consecutive_5_xx": "enforcing_consecutive_5xx",
}
"""Field names betterproto2's snake casing splits at a digit; Envoy knows only the proto's."""


def _proto_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {_MISSPELT.get(key, key): _proto_names(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_proto_names(item) for item in value]
    return value


def _listener(gateway: Gateway, placement: Placement, with_processor: bool) -> Listener:
    # Requests pass the filters in this order, responses in the reverse one: gzip request
    # bodies are inflated before the processor reads them, and answers are compressed after
    # it for clients that accept gzip. Answers reach the processor plain because it asks
    # providers for identity (and inflates those that compress anyway itself: behind Envoy's
    # decompressor the processor never receives the response body, envoyproxy/envoy#21205).
    filters = [_request_decompressor(), _compressor()]
    if with_processor:
        # Who the caller is, verified before the processor reads it: tokens first, so that
        # an authorization service sees their claims.
        filters += [f for f in (jwt_filter(gateway), ext_authz_filter(gateway)) if f is not None]
        filters.append(_ext_proc_filter(gateway))
    # No x-envoy-* headers towards providers or clients: they describe our internals.
    router = Router(suppress_envoy_headers=True)
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
        route_config=_routes(gateway, with_processor),
        http_filters=filters,
        local_reply_config=_local_replies(),
        tracing=_tracing(gateway.telemetry.tracing)
        if gateway.telemetry.tracing.active(os.environ)
        else None,
        access_log=cut_report_loggers(_report_clusters(placement)) if with_processor else [],
    )
    return Listener(
        name="public",
        address=_socket_address(gateway.listen.address, placement.port),
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


def _processor_service(gateway: Gateway) -> GrpcService:
    return GrpcService(
        envoy_grpc=GrpcServiceEnvoyGrpc(
            cluster_name=PROCESSOR_CLUSTER,
            max_receive_message_length=gateway.listen.max_message,
        )
    )


def _alias_clusters(gateway: Gateway) -> list[Cluster]:
    """A cluster for each alias with fallback, its targets' endpoints by priority."""
    clusters = []
    for route in gateway.models.values():
        if route.retry is None:
            continue
        providers = {target.provider.name: target.provider for target in route.targets}
        tls = {
            name: ClusterTransportSocketMatch(
                name=name,
                match=Struct(fields={TLS_MATCH: Value(string_value=name)}),
                transport_socket=_tls(provider),
            )
            for name, provider in providers.items()
            if provider.tls
        }
        # ALPN (and with it HTTP/2) only when every target is reached over TLS.
        protocol = _http_protocol(tls=len(tls) == len(providers))
        clusters += alias_clusters(
            route, processor=_processor_service(gateway), protocol=protocol, tls=tls
        )
    return clusters


def _identity_namespaces(gateway: Gateway) -> list[str]:
    """The metadata the processor reads to know the caller."""
    namespaces = [JWT_METADATA] if gateway.identity.jwt else []
    return namespaces + ([EXT_AUTHZ_METADATA] if gateway.identity.reads_ext_authz else [])


def _ext_proc_filter(gateway: Gateway) -> HttpFilter:
    processor = ExternalProcessor(
        grpc_service=_processor_service(gateway),
        # Fail closed: with the processor down a request must never reach a provider.
        failure_mode_allow=False,
        status_on_error=HttpStatus(code=StatusCode.ServiceUnavailable),
        message_timeout=timedelta(seconds=gateway.processor.message_timeout),
        allow_mode_override=True,
        # The processor takes Envoy's attempt count off answers it has logged.
        mutation_rules=HeaderMutationRules(allow_envoy=True),
        # What the request's stream passes the streams of its attempts (the span's context);
        # what Envoy verified of the caller.
        metadata_options=MetadataOptions(
            receiving_namespaces=MetadataOptionsMetadataNamespaces(untyped=[SHARED_METADATA]),
            forwarding_namespaces=MetadataOptionsMetadataNamespaces(untyped=forwarded)
            if (forwarded := _identity_namespaces(gateway))
            else None,
        ),
        processing_mode=ProcessingMode(
            request_header_mode=ProcessingModeHeaderSendMode.SEND,
            request_body_mode=ProcessingModeBodySendMode.BUFFERED,
            request_trailer_mode=ProcessingModeHeaderSendMode.SKIP,
            # Responses are read only for model calls, switched on by the processor through
            # mode_override: Envoy's own replies to broken requests (431, 400) come before
            # the processor saw the request, and pausing them would lose them.
            response_header_mode=ProcessingModeHeaderSendMode.SKIP,
            response_body_mode=ProcessingModeBodySendMode.NONE,
            response_trailer_mode=ProcessingModeHeaderSendMode.SKIP,
        ),
    )
    return HttpFilter(name="envoy.filters.http.ext_proc", typed_config=AnyMessage.pack(processor))


def _compressor() -> HttpFilter:
    """Gzip toward clients that accept it (JSON answers and errors; event streams pass
    uncompressed, as Envoy's default content types leave them out)."""
    library = TypedExtensionConfig(
        name="envoy.compression.gzip.compressor", typed_config=AnyMessage.pack(GzipCompressor())
    )
    config = Compressor(compressor_library=library)
    return HttpFilter(name="envoy.filters.http.compressor", typed_config=AnyMessage.pack(config))


def _request_decompressor() -> HttpFilter:
    """Inflates gzip request bodies (the limit on the body applies to the inflated size);
    responses pass untouched."""
    config = Decompressor(
        decompressor_library=TypedExtensionConfig(
            name="envoy.compression.gzip.decompressor",
            # Deflate cannot inflate past ~1032:1: at that ratio no well-formed body is cut
            # short, and `max_request_body` (Envoy's buffer limit) is what stops a bomb.
            typed_config=AnyMessage.pack(GzipDecompressor(max_inflate_ratio=MAX_INFLATE_RATIO)),
        ),
        request_direction_config=DecompressorRequestDirectionConfig(
            # The processor chooses what the provider may send (identity).
            advertise_accept_encoding=False,
        ),
        response_direction_config=DecompressorResponseDirectionConfig(
            common_config=DecompressorCommonDirectionConfig(
                enabled=RuntimeFeatureFlag(default_value=False, runtime_key="unused")
            )
        ),
    )
    return HttpFilter(name="envoy.filters.http.decompressor", typed_config=AnyMessage.pack(config))


def _has_fallback(gateway: Gateway) -> bool:
    return any(route.retry for route in gateway.models.values())


def _routes(gateway: Gateway, with_processor: bool) -> RouteConfiguration:
    # Aliases with fallback need the processor on each attempt: plain Envoy has none.
    routes = [
        alias_route
        for route in gateway.models.values()
        if route.retry is not None and with_processor
        for alias_route in alias_routes(route, route.retry)
    ]
    routes += [
        Route(
            name=provider.name,
            match=RouteMatch(
                prefix="/",
                headers=[
                    HeaderMatcher(
                        name=headers.ROUTE, string_match=StringMatcher(exact=provider.name)
                    )
                ],
            ),
            route=RouteAction(
                cluster=provider.cluster,
                timeout=timedelta(seconds=provider.timeout),
                # A JSON answer says nothing until it is whole: the connection manager's
                # stream idle timeout (300 s) must not end it before the provider's timeout.
                # Streams that stall are ended by the processor (`idle_timeout`).
                idle_timeout=timedelta(seconds=provider.timeout),
                host_rewrite_literal=provider.authority,
            ),
        )
        for provider in gateway.providers.values()
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
    fallback = with_processor and _has_fallback(gateway)
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


def _local_replies() -> LocalReplyConfig:
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
    # The processor's replies carry details `extproc_<status>`; only Envoy's own are rewritten.
    from_envoy = AccessLogFilter(
        extension_filter=ExtensionFilter(
            name="envoy.access_loggers.extension_filters.cel",
            typed_config=AnyMessage.pack(
                ExpressionFilter(expression=f"!response.code_details.startsWith('{REPLY_DETAILS}')")
            ),
        )
    )
    mappers = []
    for status, error in bodies:
        status_is = AccessLogFilter(
            status_code_filter=StatusCodeFilter(
                comparison=ComparisonFilter(
                    op=Op.EQ, value=RuntimeUInt32(default_value=status, runtime_key="unused")
                )
            )
        )
        mappers.append(
            ResponseMapper(
                filter=_all_of(status_is, from_envoy),
                body_format_override=SubstitutionFormatString(
                    text_format_source=DataSource(inline_string=error.to_body().decode()),
                    content_type=JSON,
                ),
            )
        )
    return LocalReplyConfig(mappers=mappers)


def _span_batching() -> LayeredRuntime:
    """Envoy's tracer sends its spans in batches like the processor's: by default it makes
    one export call per 5 spans, which under load costs Envoy and the collector more than
    the spans themselves (measured: +68 us of Envoy CPU per traced call)."""
    settings = {
        "tracing.opentelemetry.min_flush_spans": ENVOY_SPAN_BATCH,
        "tracing.opentelemetry.flush_interval_ms": ENVOY_SPAN_FLUSH_MS,
    }
    return LayeredRuntime(
        layers=[
            RuntimeLayer(
                name="span_batching",
                static_layer=Struct(
                    fields={key: Value(number_value=value) for key, value in settings.items()}
                ),
            )
        ]
    )


def _all_of(*filters: AccessLogFilter) -> AccessLogFilter:
    return AccessLogFilter(and_filter=AndFilter(filters=list(filters)))


def _tracing(spec: TracingSettings) -> HttpConnectionManagerTracing:
    """Envoy's OpenTelemetry tracer: it starts (or continues) each request's trace, decides
    the sampling, and passes the context to the processor in the ext_proc call's metadata."""
    exporter = OpenTelemetryConfig(
        grpc_service=GrpcService(envoy_grpc=GrpcServiceEnvoyGrpc(cluster_name=COLLECTOR_CLUSTER)),
        service_name=f"{spec.service_name}-envoy",
    )
    return HttpConnectionManagerTracing(
        random_sampling=Percent(value=spec.sampling * 100),
        provider=TracingHttp(
            name="envoy.tracers.opentelemetry", typed_config=AnyMessage.pack(exporter)
        ),
    )


def collector_endpoint(spec: TracingSettings, environ: Mapping[str, str] = os.environ) -> str:
    """The OTLP/gRPC endpoint: the configured one, else the standard OTEL_* variables."""
    return (
        spec.endpoint
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or DEFAULT_COLLECTOR
    )


def _http2_only() -> dict[str, AnyMessage]:
    """Cluster protocol options for gRPC services: HTTP/2 without negotiation."""
    options = HttpProtocolOptions(
        explicit_http_config=HttpProtocolOptionsExplicitHttpConfig(
            http2_protocol_options=Http2ProtocolOptions()
        )
    )
    return {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": AnyMessage.pack(options)}


def _collector_cluster(spec: TracingSettings) -> Cluster:
    url = urlsplit(collector_endpoint(spec))
    return _dns_cluster(
        COLLECTOR_CLUSTER, url.hostname or "", url.port or 4317, options=_http2_only()
    )


def _dns_cluster(
    name: str,
    host: str,
    port: int,
    *,
    options: dict[str, AnyMessage] | None = None,
    tls: TransportSocket | None = None,
) -> Cluster:
    """A service Envoy reaches by name, re-resolved as DNS changes."""
    return Cluster(
        name=name,
        type=ClusterDiscoveryType.STRICT_DNS,
        dns_lookup_family=ClusterDnsLookupFamily.V4_PREFERRED,
        connect_timeout=timedelta(seconds=1),
        typed_extension_protocol_options=options or {},
        transport_socket=tls,
        load_assignment=ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                LocalityLbEndpoints(
                    lb_endpoints=[
                        LbEndpoint(endpoint=Endpoint(address=_socket_address(host, port)))
                    ]
                )
            ],
        ),
    )


def _identity_clusters(gateway: Gateway) -> list[Cluster]:
    """Where Envoy fetches issuers' keys, and the authorization service it asks."""
    clusters = [
        _dns_cluster(source.cluster, source.host, source.port, tls=source.tls)
        for source in jwks_sources(gateway)
    ]
    authz = gateway.identity.ext_authz
    if authz is not None:
        address = parse_grpc_address(authz.address)
        clusters.append(
            _dns_cluster(EXT_AUTHZ_CLUSTER, address.host, address.port, options=_http2_only())
        )
    return clusters


def _report_clusters(placement: Placement) -> list[str]:
    """Where Envoy sends its reports of cut calls: every worker (see `cut_reports`)."""
    addresses = placement.processor_addresses
    if len(addresses) == 1:
        return [PROCESSOR_CLUSTER]
    return [f"{PROCESSOR_CLUSTER}_{index}" for index in range(len(addresses))]


def _processor_cluster(name: str, addresses: tuple[str, ...], tls: ProcessorTls | None) -> Cluster:
    """The processor's workers; over TCP with `tls`, Envoy proves itself with its client
    certificate and checks the processor's."""
    tcp = parse_grpc_address(addresses[0]).socket_path is None
    return Cluster(
        name=name,
        transport_socket=_processor_tls(tls, addresses[0]) if tls is not None and tcp else None,
        type=ClusterDiscoveryType.STATIC,
        connect_timeout=timedelta(seconds=1),
        typed_extension_protocol_options=_http2_only(),
        circuit_breakers=_breakers(BREAKER_LIMIT),
        load_assignment=ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                LocalityLbEndpoints(
                    lb_endpoints=[
                        LbEndpoint(endpoint=Endpoint(address=_grpc_address(address)))
                        for address in addresses
                    ]
                )
            ],
        ),
    )


def _http_protocol(*, tls: bool) -> HttpProtocolOptions:
    """HTTP/2 where TLS lets ALPN choose it, else HTTP/1.1."""
    if tls:
        return HttpProtocolOptions(
            auto_config=HttpProtocolOptionsAutoHttpConfig(
                http_protocol_options=Http1ProtocolOptions(),
                http2_protocol_options=Http2ProtocolOptions(),
            )
        )
    return HttpProtocolOptions(
        explicit_http_config=HttpProtocolOptionsExplicitHttpConfig(
            http_protocol_options=Http1ProtocolOptions()
        )
    )


def _provider_cluster(provider: Provider, numbered_attempts: bool) -> Cluster:
    """`numbered_attempts`: Envoy numbers attempts (an alias has fallback), and the number
    must not reach the provider."""
    protocol = _http_protocol(tls=provider.tls)
    if numbered_attempts:
        protocol.http_filters = without_attempt_count()
    return Cluster(
        name=provider.cluster,
        type=ClusterDiscoveryType.LOGICAL_DNS,
        dns_lookup_family=ClusterDnsLookupFamily.V4_PREFERRED,
        connect_timeout=timedelta(seconds=provider.connect_timeout),
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": AnyMessage.pack(protocol)
        },
        circuit_breakers=_breakers(provider.max_concurrent_requests),
        transport_socket=_tls(provider) if provider.tls else None,
        load_assignment=ClusterLoadAssignment(
            cluster_name=provider.cluster,
            endpoints=[
                LocalityLbEndpoints(
                    lb_endpoints=[
                        LbEndpoint(
                            endpoint=Endpoint(address=_socket_address(provider.host, provider.port))
                        )
                    ]
                )
            ],
        ),
    )


def _processor_tls(tls: ProcessorTls, address: str) -> TransportSocket:
    name = tls.server_name or parse_grpc_address(address).host
    context = UpstreamTlsContext(
        sni=name,
        common_tls_context=CommonTlsContext(
            alpn_protocols=["h2"],
            tls_certificates=[
                TlsCertificate(
                    certificate_chain=DataSource(filename=str(tls.envoy_cert_file)),
                    private_key=DataSource(filename=str(tls.envoy_key_file)),
                )
            ],
            validation_context=CertificateValidationContext(
                trusted_ca=DataSource(filename=str(tls.ca_file)),
                match_typed_subject_alt_names=[
                    SubjectAltNameMatcher(
                        san_type=_san_type(name), matcher=StringMatcher(exact=name)
                    )
                ],
            ),
        ),
    )
    return TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=AnyMessage.pack(context)
    )


def _san_type(name: str) -> SubjectAltNameMatcherSanType:
    """An IP address is matched as one; anything else as a DNS name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return SubjectAltNameMatcherSanType.DNS
    return SubjectAltNameMatcherSanType.IP_ADDRESS


def _tls(provider: Provider) -> TransportSocket:
    context = UpstreamTlsContext(
        sni=provider.host,
        common_tls_context=CommonTlsContext(
            alpn_protocols=["h2", "http/1.1"],
            validation_context=CertificateValidationContext(
                trusted_ca=DataSource(filename=provider.ca_file),
                match_typed_subject_alt_names=[
                    SubjectAltNameMatcher(
                        san_type=SubjectAltNameMatcherSanType.DNS,
                        matcher=StringMatcher(exact=provider.host),
                    )
                ],
            ),
        ),
    )
    return TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=AnyMessage.pack(context)
    )


def _breakers(limit: int) -> CircuitBreakers:
    return CircuitBreakers(
        thresholds=[
            CircuitBreakersThresholds(
                max_connections=limit, max_pending_requests=limit, max_requests=limit
            )
        ]
    )


def _grpc_address(address: str) -> Address:
    parsed = parse_grpc_address(address)
    if parsed.socket_path is not None:
        return Address(pipe=Pipe(path=parsed.socket_path))
    return _socket_address(parsed.host, parsed.port)


def _socket_address(host: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=host, port_value=port))


def _response_header(name: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=name, value=value))
