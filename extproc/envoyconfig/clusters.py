"""Clusters of what Envoy calls besides the processor: providers, identity services, and
the shared building blocks (DNS clusters, TLS, HTTP protocol options, breakers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from envoy_data_plane.envoy.config.cluster.v3 import (
    CircuitBreakers,
    CircuitBreakersThresholds,
    Cluster,
    ClusterDiscoveryType,
    ClusterDnsLookupFamily,
)
from envoy_data_plane.envoy.config.core.v3 import (
    Address,
    DataSource,
    Http1ProtocolOptions,
    Http2ProtocolOptions,
    Pipe,
    SocketAddress,
    TransportSocket,
)
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    SubjectAltNameMatcher,
    SubjectAltNameMatcherSanType,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
    HttpProtocolOptions,
    HttpProtocolOptionsAutoHttpConfig,
    HttpProtocolOptionsExplicitHttpConfig,
)
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc.config import Gateway
from extproc.config.address import parse_grpc_address
from extproc.envoyconfig.filters import without_attempt_count
from extproc.envoyconfig.identity import (
    EXT_AUTHZ_CLUSTER,
    jwks_sources,
)


def http2_only() -> dict[str, AnyMessage]:
    """Cluster protocol options for gRPC services: HTTP/2 without negotiation."""
    options = HttpProtocolOptions(
        explicit_http_config=HttpProtocolOptionsExplicitHttpConfig(
            http2_protocol_options=Http2ProtocolOptions()
        )
    )
    return {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": AnyMessage.pack(options)}


def dns_cluster(
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
                    lb_endpoints=[LbEndpoint(endpoint=Endpoint(address=socket_address(host, port)))]
                )
            ],
        ),
    )


def identity_clusters(gateway: Gateway) -> list[Cluster]:
    """Where Envoy fetches issuers' keys, and the authorization service it asks."""
    clusters = [
        dns_cluster(source.cluster, source.host, source.port, tls=source.tls)
        for source in jwks_sources(gateway)
    ]
    authz = gateway.identity.ext_authz
    if authz is not None:
        address = parse_grpc_address(authz.address)
        clusters.append(
            dns_cluster(EXT_AUTHZ_CLUSTER, address.host, address.port, options=http2_only())
        )
    return clusters


def http_protocol(*, tls: bool) -> HttpProtocolOptions:
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


class Upstream(Protocol):
    """What a cluster to a provider or an MCP server is made of."""

    @property
    def cluster(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> bool: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def max_concurrent_requests(self) -> int: ...
    @property
    def ca_file(self) -> str: ...


def provider_cluster(provider: Upstream, numbered_attempts: bool = False) -> Cluster:
    """A cluster to a provider or an MCP server. `numbered_attempts`: Envoy numbers attempts
    (an alias has fallback), and the number must not reach the provider."""
    protocol = http_protocol(tls=provider.tls)
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
        circuit_breakers=breakers(provider.max_concurrent_requests),
        transport_socket=provider_tls(provider) if provider.tls else None,
        load_assignment=ClusterLoadAssignment(
            cluster_name=provider.cluster,
            endpoints=[
                LocalityLbEndpoints(
                    lb_endpoints=[
                        LbEndpoint(
                            endpoint=Endpoint(address=socket_address(provider.host, provider.port))
                        )
                    ]
                )
            ],
        ),
    )


def provider_tls(provider: Upstream) -> TransportSocket:
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


def breakers(limit: int) -> CircuitBreakers:
    return CircuitBreakers(
        thresholds=[
            CircuitBreakersThresholds(
                max_connections=limit, max_pending_requests=limit, max_requests=limit
            )
        ]
    )


def grpc_address(address: str) -> Address:
    parsed = parse_grpc_address(address)
    if parsed.socket_path is not None:
        return Address(pipe=Pipe(path=parsed.socket_path))
    return socket_address(parsed.host, parsed.port)


def socket_address(host: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=host, port_value=port))
