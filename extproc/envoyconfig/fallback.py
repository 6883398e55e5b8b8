"""Aliases with fallback: per alias, clusters of its targets as endpoints grouped by priority,
and routes whose retry policy moves a failed attempt on to the next priority.

An alias has one cluster (and route) per priority level to start from: the one from its
first level, the one from its second (the first left out), and so on. The processor routes a
request to the first level not wholly cooling down after throttling, so that no attempt is
spent on a provider that asked to be left alone.

Envoy's router owns the attempts. The request's own stream prepares the request for the
first target it expects (see `extproc.first_attempt`); an ext_proc filter in the alias cluster's
upstream filter chain sees every other attempt, and which target Envoy picked for it (the
endpoint's metadata), so that each one is prepared for its own provider. A matcher skips that
filter for the first attempt when it goes where the request was prepared for: the usual call
then costs no second stream. Envoy reports such a first attempt that failed through its
access-log service (`extproc.envoyconfig.cut_reports`).
"""

from __future__ import annotations

import functools
from datetime import timedelta

from envoy_data_plane.envoy.config.cluster.v3 import (
    Cluster,
    ClusterDiscoveryType,
    ClusterDnsLookupFamily,
    ClusterTransportSocketMatch,
    OutlierDetection,
)
from envoy_data_plane.envoy.config.core.v3 import (
    Address,
    Metadata,
    SocketAddress,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy_data_plane.envoy.config.route.v3 import (
    HeaderMatcher,
    RetryPolicy,
    RetryPolicyRateLimitedRetryBackOff,
    RetryPolicyResetHeader,
    RetryPolicyResetHeaderFormat,
    RetryPolicyRetryBackOff,
    RetryPolicyRetryHostPredicate,
    RetryPolicyRetryPriority,
    Route,
    RouteAction,
    RouteMatch,
)
from envoy_data_plane.envoy.extensions.common.matching.v3 import ExtensionWithMatcher
from envoy_data_plane.envoy.extensions.filters.common.matcher.action.v3 import SkipFilter
from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import (
    MetadataOptions,
    MetadataOptionsMetadataNamespaces,
)
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpFilter,
)
from envoy_data_plane.envoy.extensions.retry.host.previous_hosts.v3 import PreviousHostsPredicate
from envoy_data_plane.envoy.extensions.retry.priority.previous_priorities.v3 import (
    PreviousPrioritiesConfig,
)
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import HttpProtocolOptions
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.google.protobuf import Any as AnyMessage
from envoy_data_plane.google.protobuf import Struct, Value
from envoy_data_plane.xds.core.v3 import TypedExtensionConfig as XdsExtension
from envoy_data_plane.xds.type.matcher.v3 import (
    Matcher,
    MatcherMatcherList,
    MatcherMatcherListFieldMatcher,
    MatcherMatcherListPredicate,
    MatcherMatcherListPredicateSinglePredicate,
    MatcherOnMatch,
)
from envoy_data_plane.xds.type.v3 import CelExpression

from extproc import headers
from extproc.config import Gateway
from extproc.config.model import ModelRoute, RetrySettings
from extproc.contract import (
    ATTEMPT_ATTRIBUTES,
    ENDPOINT_METADATA,
    SHARED_METADATA,
    alias_cluster,
    route_value,
)
from extproc.envoyconfig.cel import Builder, CelMatcher, HttpAttributesCelMatchInput, parsed
from extproc.envoyconfig.clusters import http_protocol, provider_tls
from extproc.envoyconfig.filters import header_remover, upstream_codec
from extproc.envoyconfig.placement import ext_proc_filter

TLS_MATCH = "provider"
OUTCOMES = {
    "connect-failure": ("connect-failure",),
    "reset": ("reset", "refused-stream"),
    # Envoy retries a per-attempt timeout under `gateway-error` (as a 504).
    "timeout": ("gateway-error",),
    "429": ("retriable-status-codes",),
    "5xx": ("5xx",),
}


def alias_routes(route: ModelRoute, retry: RetrySettings) -> list[Route]:
    return [_alias_route(route, retry, start) for start in range(len(route.priorities))]


def alias_clusters(gateway: Gateway) -> list[Cluster]:
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
                transport_socket=provider_tls(provider),
            )
            for name, provider in providers.items()
            if provider.tls
        }
        # ALPN (and with it HTTP/2) only when every target is reached over TLS.
        protocol = http_protocol(tls=len(tls) == len(providers))
        protocol.http_filters = [
            _attempt_filter(gateway),
            # What the first attempt skipped by the matcher would have removed.
            header_remover(headers.ATTEMPT_COUNT, headers.PREPARED_FOR),
            upstream_codec(),
        ]
        clusters += [
            _alias_cluster(route, start, protocol, tls) for start in range(len(route.priorities))
        ]
    return clusters


def _alias_route(route: ModelRoute, retry: RetrySettings, start: int) -> Route:
    outcomes = [token for outcome in retry.on for token in OUTCOMES[outcome]]
    backoff = RetryPolicyRetryBackOff(
        base_interval=timedelta(seconds=retry.backoff_base),
        max_interval=timedelta(seconds=retry.backoff_max),
    )
    policy = RetryPolicy(
        retry_on=",".join(outcomes),
        num_retries=retry.attempts - 1,
        per_try_timeout=timedelta(seconds=retry.per_attempt_timeout),
        retriable_status_codes=[429] if "429" in retry.on else [],
        retry_priority=RetryPolicyRetryPriority(
            name="envoy.retry_priorities.previous_priorities",
            typed_config=AnyMessage.pack(PreviousPrioritiesConfig(update_frequency=1)),
        ),
        retry_host_predicate=[
            RetryPolicyRetryHostPredicate(
                name="envoy.retry_host_predicates.previous_hosts",
                typed_config=AnyMessage.pack(PreviousHostsPredicate()),
            )
        ],
        host_selection_retry_max_attempts=3,
        retry_back_off=backoff,
        rate_limited_retry_back_off=RetryPolicyRateLimitedRetryBackOff(
            reset_headers=[
                RetryPolicyResetHeader(
                    name=headers.RETRY_AFTER, format=RetryPolicyResetHeaderFormat.SECONDS
                )
            ],
            max_interval=timedelta(seconds=retry.backoff_max),
        ),
    )
    whole = retry.attempts * retry.per_attempt_timeout + (retry.attempts - 1) * retry.backoff_max
    return Route(
        name=alias_cluster(route.alias, start),
        match=RouteMatch(
            prefix="/",
            headers=[
                HeaderMatcher(
                    name=headers.ROUTE,
                    string_match=StringMatcher(exact=route_value(route.alias, start)),
                )
            ],
        ),
        route=RouteAction(
            cluster=alias_cluster(route.alias, start),
            timeout=timedelta(seconds=whole),
            idle_timeout=timedelta(seconds=whole),
            auto_host_rewrite=True,
            retry_policy=policy,
        ),
    )


def _alias_cluster(
    route: ModelRoute,
    start: int,
    protocol: HttpProtocolOptions,
    tls: dict[str, ClusterTransportSocketMatch],
) -> Cluster:
    """The alias's targets from its `start`th priority level on (levels renumbered from 0,
    as Envoy wants them)."""
    levels = route.priorities[start:]
    by_priority: dict[int, list[LbEndpoint]] = {}
    for index, target in enumerate(route.targets):
        if not target.weight or target.priority not in levels:
            continue
        provider = target.provider
        metadata = Metadata(
            filter_metadata={
                ENDPOINT_METADATA: Struct(fields={"target": Value(string_value=str(index))}),
                "envoy.transport_socket_match": Struct(
                    fields={TLS_MATCH: Value(string_value=provider.name)}
                ),
            }
        )
        by_priority.setdefault(levels.index(target.priority), []).append(
            LbEndpoint(
                endpoint=Endpoint(
                    address=Address(
                        socket_address=SocketAddress(
                            address=provider.host, port_value=provider.port
                        )
                    ),
                    # The Host each attempt gets (auto_host_rewrite): the same authority as
                    # the provider's own route sends, port included when not the default —
                    # a signed request (SigV4) covers it.
                    hostname=provider.authority,
                ),
                load_balancing_weight=target.weight,
                metadata=metadata,
            )
        )
    providers = {target.provider.name: target.provider for target in route.targets}
    name = alias_cluster(route.alias, start)
    return Cluster(
        name=name,
        type=ClusterDiscoveryType.STRICT_DNS,
        dns_lookup_family=ClusterDnsLookupFamily.V4_PREFERRED,
        connect_timeout=timedelta(
            seconds=max(provider.connect_timeout for provider in providers.values())
        ),
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": AnyMessage.pack(protocol)
        },
        transport_socket_matches=[tls[name] for name in providers if name in tls],
        outlier_detection=OutlierDetection(
            consecutive_5xx=5,
            consecutive_gateway_failure=3,
            interval=timedelta(seconds=5),
            base_ejection_time=timedelta(seconds=30),
            max_ejection_percent=100,
        ),
        load_assignment=ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                LocalityLbEndpoints(priority=priority, lb_endpoints=endpoints)
                for priority, endpoints in sorted(by_priority.items())
            ],
        ),
    )


def _attempt_filter(gateway: Gateway) -> HttpFilter:
    """ext_proc for each attempt but a first one already prepared: its request (headers and
    body) and its response headers."""
    metadata = MetadataOptions(
        forwarding_namespaces=MetadataOptionsMetadataNamespaces(untyped=[SHARED_METADATA])
    )
    attempt = ext_proc_filter(
        gateway, metadata, response_headers=True, request_attributes=ATTEMPT_ATTRIBUTES
    )
    skip = MatcherOnMatch(
        action=XdsExtension(name="skip", typed_config=AnyMessage.pack(SkipFilter()))
    )
    predicate = MatcherMatcherListPredicateSinglePredicate(
        input=XdsExtension(
            name="attributes", typed_config=AnyMessage.pack(HttpAttributesCelMatchInput())
        ),
        custom_match=XdsExtension(
            name="cel", typed_config=AnyMessage.pack(_first_attempt_prepared())
        ),
    )
    matcher = Matcher(
        matcher_list=MatcherMatcherList(
            matchers=[
                MatcherMatcherListFieldMatcher(
                    predicate=MatcherMatcherListPredicate(single_predicate=predicate),
                    on_match=skip,
                )
            ]
        )
    )
    wrapped = ExtensionWithMatcher(
        xds_matcher=matcher,
        extension_config=TypedExtensionConfig(name=attempt.name, typed_config=attempt.typed_config),
    )
    return HttpFilter(name="attempt-unless-prepared", typed_config=AnyMessage.pack(wrapped))


def _first_attempt_prepared() -> CelMatcher:
    """The first attempt, going to the target the request's stream prepared it for (a
    missing header is no match: the filter then runs)."""
    cel = Builder()
    request_header = functools.partial(cel.index, cel.path("request.headers"))
    host_target = cel.index(
        cel.path("xds.upstream_host_metadata.filter_metadata"), ENDPOINT_METADATA, "target"
    )
    expression = cel.both(
        cel.equal(request_header(headers.ATTEMPT_COUNT), cel.text("1")),
        cel.equal(host_target, request_header(headers.PREPARED_FOR)),
    )
    return CelMatcher(
        expr_match=CelExpression(cel_expr_parsed=parsed(expression)),
        description=f"{headers.ATTEMPT_COUNT} == 1 and the endpoint's target is "
        f"{headers.PREPARED_FOR}",
    )
