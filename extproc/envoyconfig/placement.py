"""Where the processor is, as Envoy reaches it: its clusters (one per worker for reports),
its gRPC service, and the one builder of every ext_proc filter that calls it."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from envoy_data_plane.envoy.config.cluster.v3 import (
    Cluster,
    ClusterDiscoveryType,
)
from envoy_data_plane.envoy.config.common.mutation_rules.v3 import HeaderMutationRules
from envoy_data_plane.envoy.config.core.v3 import (
    DataSource,
    GrpcService,
    GrpcServiceEnvoyGrpc,
    TransportSocket,
)
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import (
    ExternalProcessor,
    MetadataOptions,
    MetadataOptionsMetadataNamespaces,
    ProcessingMode,
    ProcessingModeBodySendMode,
    ProcessingModeHeaderSendMode,
)
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpFilter,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    SubjectAltNameMatcher,
    SubjectAltNameMatcherSanType,
    TlsCertificate,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc.config import Gateway
from extproc.config.address import parse_grpc_address
from extproc.config.model import ProcessorTls
from extproc.contract import (
    EXT_AUTHZ_METADATA,
    JWT_METADATA,
    SHARED_METADATA,
)
from extproc.envoyconfig.clusters import breakers, grpc_address, http2_only

PROCESSOR_CLUSTER = "extproc"


BREAKER_LIMIT = 1_000_000
"""Every HTTP request is one stream to the processor: never let a breaker refuse those."""


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


def processor_service(gateway: Gateway) -> GrpcService:
    return GrpcService(
        envoy_grpc=GrpcServiceEnvoyGrpc(
            cluster_name=PROCESSOR_CLUSTER,
            max_receive_message_length=gateway.listen.max_message,
        )
    )


def _identity_namespaces(gateway: Gateway) -> list[str]:
    """The metadata the processor reads to know the caller."""
    namespaces = [JWT_METADATA] if gateway.identity.jwt else []
    return namespaces + ([EXT_AUTHZ_METADATA] if gateway.identity.reads_ext_authz else [])


def ext_proc_filter(
    gateway: Gateway,
    metadata_options: MetadataOptions,
    *,
    response_headers: bool,
    request_attributes: Sequence[str] = (),
) -> HttpFilter:
    """An ext_proc filter calling the processor: every one of them (the request's own, each
    attempt's) fails closed, with the same answer and the same time for the processor's. It
    sees the request's headers and whole body; of the response, its headers when
    `response_headers` (the processor may ask for more through mode_override)."""
    processing_mode = ProcessingMode(
        request_header_mode=ProcessingModeHeaderSendMode.SEND,
        request_body_mode=ProcessingModeBodySendMode.BUFFERED,
        request_trailer_mode=ProcessingModeHeaderSendMode.SKIP,
        response_header_mode=ProcessingModeHeaderSendMode.SEND
        if response_headers
        else ProcessingModeHeaderSendMode.SKIP,
        response_body_mode=ProcessingModeBodySendMode.NONE,
        response_trailer_mode=ProcessingModeHeaderSendMode.SKIP,
    )
    processor = ExternalProcessor(
        grpc_service=processor_service(gateway),
        # Fail closed: with the processor down a request must never reach a provider.
        failure_mode_allow=False,
        status_on_error=HttpStatus(code=StatusCode.ServiceUnavailable),
        message_timeout=timedelta(seconds=gateway.processor.message_timeout),
        allow_mode_override=True,
        # The processor takes Envoy's attempt count off what it has logged.
        mutation_rules=HeaderMutationRules(allow_envoy=True),
        metadata_options=metadata_options,
        request_attributes=list(request_attributes),
        processing_mode=processing_mode,
    )
    return HttpFilter(name="envoy.filters.http.ext_proc", typed_config=AnyMessage.pack(processor))


def request_filter(gateway: Gateway) -> HttpFilter:
    """The ext_proc filter of the listener: each request's own stream."""
    # What the request's stream passes the streams of its attempts (the span's context);
    # what Envoy verified of the caller.
    metadata = MetadataOptions(
        receiving_namespaces=MetadataOptionsMetadataNamespaces(untyped=[SHARED_METADATA]),
        forwarding_namespaces=MetadataOptionsMetadataNamespaces(untyped=forwarded)
        if (forwarded := _identity_namespaces(gateway))
        else None,
    )
    # Responses are read only for model calls, switched on by the processor through
    # mode_override: Envoy's own replies to broken requests (431, 400) come before the
    # processor saw the request, and pausing them would lose them.
    return ext_proc_filter(gateway, metadata, response_headers=False)


def report_clusters(placement: Placement) -> list[str]:
    """Where Envoy sends its reports of cut calls: every worker (see `cut_reports`)."""
    addresses = placement.processor_addresses
    if len(addresses) == 1:
        return [PROCESSOR_CLUSTER]
    return [f"{PROCESSOR_CLUSTER}_{index}" for index in range(len(addresses))]


def processor_cluster(name: str, addresses: tuple[str, ...], tls: ProcessorTls | None) -> Cluster:
    """The processor's workers; over TCP with `tls`, Envoy proves itself with its client
    certificate and checks the processor's."""
    tcp = parse_grpc_address(addresses[0]).socket_path is None
    return Cluster(
        name=name,
        transport_socket=_processor_tls(tls, addresses[0]) if tls is not None and tcp else None,
        type=ClusterDiscoveryType.STATIC,
        connect_timeout=timedelta(seconds=1),
        typed_extension_protocol_options=http2_only(),
        circuit_breakers=breakers(BREAKER_LIMIT),
        load_assignment=ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                LocalityLbEndpoints(
                    lb_endpoints=[
                        LbEndpoint(endpoint=Endpoint(address=grpc_address(address)))
                        for address in addresses
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
