"""The Envoy bootstrap: public listener with the ext_proc filter, processor and provider clusters.

Built from typed envoy-data-plane classes so that a wrong field name fails here, not in Envoy;
`envoy --mode validate` checks the rendered result in the tests.
"""

from __future__ import annotations

import os
from typing import Any

import betterproto2
from envoy_data_plane.envoy.config.bootstrap.v3 import (
    Admin,
    Bootstrap,
    BootstrapStaticResources,
)
from envoy_data_plane.envoy.config.core.v3 import (
    Node,
)
from envoy_data_plane.envoy.config.overload.v3 import OverloadManager, ResourceMonitor
from envoy_data_plane.envoy.extensions.resource_monitors.downstream_connections.v3 import (
    DownstreamConnectionsConfig,
)
from envoy_data_plane.google.protobuf import Any as AnyMessage

from extproc.config import Gateway
from extproc.envoyconfig.clusters import (
    identity_clusters,
    provider_cluster,
    socket_address,
)
from extproc.envoyconfig.fallback import (
    alias_clusters,
)
from extproc.envoyconfig.listener import public_listener
from extproc.envoyconfig.placement import (
    PROCESSOR_CLUSTER,
    Placement,
    processor_cluster,
    report_clusters,
)
from extproc.envoyconfig.routes import has_fallback
from extproc.envoyconfig.tracing import collector_cluster, span_batching

MAX_DOWNSTREAM_CONNECTIONS = 50_000


def build_bootstrap(
    gateway: Gateway, placement: Placement, *, with_processor: bool = True
) -> Bootstrap:
    """The whole bootstrap; `with_processor=False` gives plain Envoy (the benchmark baseline)."""
    numbered = with_processor and has_fallback(gateway)
    clusters = [provider_cluster(p, numbered) for p in gateway.providers.values()]
    clusters += [provider_cluster(server) for server in gateway.mcp_servers.values()]
    clusters += identity_clusters(gateway)
    if with_processor:
        tls = gateway.processor.tls
        clusters.append(processor_cluster(PROCESSOR_CLUSTER, placement.processor_addresses, tls))
        if len(placement.processor_addresses) > 1:
            clusters += [
                processor_cluster(name, (address,), tls)
                for name, address in zip(
                    report_clusters(placement), placement.processor_addresses, strict=True
                )
            ]
        clusters += alias_clusters(gateway)
    tracing = gateway.telemetry.tracing.envoy_traces(os.environ)
    if tracing:
        clusters.append(collector_cluster(gateway.telemetry.tracing))
    return Bootstrap(
        layered_runtime=span_batching() if tracing else None,
        node=Node(id="extproc-gateway", cluster="extproc-gateway"),
        admin=Admin(address=socket_address("127.0.0.1", placement.admin_port)),
        static_resources=BootstrapStaticResources(
            listeners=[public_listener(gateway, placement, with_processor)], clusters=clusters
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
