"""What Envoy does to know the caller before the processor sees a request: verify tokens
(`jwt_authn`, its verdict handed to the processor as metadata), terminate TLS and require
client certificates, and pass a peer's SPIFFE ID on in `x-forwarded-client-cert` — or
remove a client-sent one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from envoy_data_plane.envoy.config.core.v3 import (
    ApiVersion,
    DataSource,
    GrpcService,
    GrpcServiceEnvoyGrpc,
    HttpUri,
    TransportSocket,
)
from envoy_data_plane.envoy.config.route.v3 import RouteMatch
from envoy_data_plane.envoy.extensions.filters.http.ext_authz.v3 import ExtAuthz
from envoy_data_plane.envoy.extensions.filters.http.jwt_authn.v3 import (
    JwtAuthentication,
    JwtCacheConfig,
    JwtProvider,
    JwtRequirement,
    JwtRequirementOrList,
    RemoteJwks,
    RequirementRule,
)
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManagerForwardClientCertDetails,
    HttpConnectionManagerSetCurrentClientCertDetails,
    HttpFilter,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    DownstreamTlsContext,
    TlsCertificate,
    UpstreamTlsContext,
)
from envoy_data_plane.google.protobuf import Any as AnyMessage
from envoy_data_plane.google.protobuf import Empty

from extproc.config import Gateway
from extproc.config.model import JwtIssuer, ListenSettings
from extproc.contract import EXT_AUTHZ_METADATA, JWT_FAILURE, JWT_METADATA

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
EXT_AUTHZ_CLUSTER = "ext_authz"
JWT_CACHE_SIZE = 10_000
"""Verified tokens Envoy remembers (per worker thread)."""
JWKS_FETCH_TIMEOUT = timedelta(seconds=5)


def jwt_filter(gateway: Gateway) -> HttpFilter | None:
    """Envoy verifies every token from a configured issuer. A request without one, or with a
    token that fails, goes on: the processor decides (a gateway key, or 401 with Envoy's
    reason, which Envoy writes beside the claims)."""
    issuers = {
        name: issuer
        for name, issuer in gateway.identity.jwt.items()
        if issuer.jwks_uri is not None or issuer.jwks_file is not None
    }
    if not issuers:
        return None
    config = JwtAuthentication(
        providers={name: _provider(issuer) for name, issuer in issuers.items()},
        # Each issuer by name, so that Envoy's cache of verified tokens applies (it does not
        # where the requirement names no issuer); then anything else goes on.
        rules=[
            RequirementRule(
                match=RouteMatch(prefix="/"),
                requires=JwtRequirement(
                    requires_any=JwtRequirementOrList(
                        requirements=[
                            *(JwtRequirement(provider_name=name) for name in issuers),
                            JwtRequirement(allow_missing_or_failed=Empty()),
                        ]
                    )
                ),
            )
        ],
    )
    return HttpFilter(name=JWT_METADATA, typed_config=AnyMessage.pack(config))


def _provider(issuer: JwtIssuer) -> JwtProvider:
    provider = JwtProvider(
        issuer=issuer.issuer,
        audiences=list(issuer.audiences),
        # A verified token leaves the request: it reaches neither the processor nor a
        # provider, only its claims do.
        forward=False,
        payload_in_metadata=issuer.name,
        failed_status_in_metadata=JWT_FAILURE,
        clock_skew_seconds=round(issuer.clock_skew),
        # A client sends the same token call after call: its signature is checked once
        # (expiry still every time).
        jwt_cache_config=JwtCacheConfig(jwt_cache_size=JWT_CACHE_SIZE),
    )
    if issuer.jwks_file is not None:
        provider.local_jwks = DataSource(filename=str(issuer.jwks_file))
    elif issuer.jwks_uri is not None:
        provider.remote_jwks = RemoteJwks(
            http_uri=HttpUri(
                uri=issuer.jwks_uri, cluster=jwks_cluster(issuer), timeout=JWKS_FETCH_TIMEOUT
            ),
            cache_duration=timedelta(seconds=issuer.jwks_cache),
        )
    return provider


def jwks_cluster(issuer: JwtIssuer) -> str:
    return f"jwks_{issuer.name}"


@dataclass(frozen=True, slots=True)
class JwksSource:
    """Where Envoy fetches an issuer's keys."""

    cluster: str
    host: str
    port: int
    tls: TransportSocket | None


def jwks_sources(gateway: Gateway) -> list[JwksSource]:
    sources = []
    for issuer in gateway.identity.jwt.values():
        if issuer.jwks_uri is None:
            continue
        url = urlsplit(issuer.jwks_uri)
        host = url.hostname or ""
        secure = url.scheme == "https"
        port = url.port or (443 if secure else 80)
        sources.append(
            JwksSource(jwks_cluster(issuer), host, port, _tls_to(host) if secure else None)
        )
    return sources


def _tls_to(host: str) -> TransportSocket:
    """TLS to an issuer's key server: its certificate checked against the system's CAs."""
    context = UpstreamTlsContext(
        sni=host,
        common_tls_context=CommonTlsContext(
            validation_context=CertificateValidationContext(
                trusted_ca=DataSource(filename=SYSTEM_CAS)
            )
        ),
    )
    return TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=AnyMessage.pack(context)
    )


def ext_authz_filter(gateway: Gateway) -> HttpFilter | None:
    """Envoy asks the authorization service first; it may refuse (its answer goes to the
    client), and vouches for the caller with metadata the processor reads. A service that
    fails or is slow refuses (403): nothing passes unchecked."""
    authz = gateway.identity.ext_authz
    if authz is None:
        return None
    config = ExtAuthz(
        grpc_service=GrpcService(
            envoy_grpc=GrpcServiceEnvoyGrpc(cluster_name=EXT_AUTHZ_CLUSTER),
            timeout=timedelta(seconds=authz.timeout),
        ),
        transport_api_version=ApiVersion.V3,
        failure_mode_allow=False,
        # What Envoy verified of a token, for the service to decide on.
        metadata_context_namespaces=[JWT_METADATA] if gateway.identity.jwt else [],
    )
    return HttpFilter(name=EXT_AUTHZ_METADATA, typed_config=AnyMessage.pack(config))


def listener_tls(listen: ListenSettings) -> TransportSocket | None:
    """TLS for clients; with a client CA, a certificate from it is required."""
    tls = listen.tls
    if tls is None:
        return None
    common = CommonTlsContext(
        alpn_protocols=["h2", "http/1.1"],
        tls_certificates=[
            TlsCertificate(
                certificate_chain=DataSource(filename=str(tls.cert_file)),
                private_key=DataSource(filename=str(tls.key_file)),
            )
        ],
    )
    if tls.client_ca_file is not None:
        common.validation_context = CertificateValidationContext(
            trusted_ca=DataSource(filename=str(tls.client_ca_file))
        )
    context = DownstreamTlsContext(
        common_tls_context=common, require_client_certificate=tls.client_ca_file is not None
    )
    return TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=AnyMessage.pack(context)
    )


def client_cert_details(
    gateway: Gateway,
) -> tuple[
    HttpConnectionManagerForwardClientCertDetails,
    HttpConnectionManagerSetCurrentClientCertDetails | None,
]:
    """How Envoy treats `x-forwarded-client-cert`: set from the client's certificate when it
    requires one; kept as the trusted hop in front sent it; removed otherwise, so a client
    cannot claim an identity with a header."""
    if gateway.listen.client_certificates:
        return (
            HttpConnectionManagerForwardClientCertDetails.SANITIZE_SET,
            HttpConnectionManagerSetCurrentClientCertDetails(uri=True),
        )
    if gateway.identity.xfcc_from_trusted_hop:
        return HttpConnectionManagerForwardClientCertDetails.ALWAYS_FORWARD_ONLY, None
    return HttpConnectionManagerForwardClientCertDetails.SANITIZE, None
