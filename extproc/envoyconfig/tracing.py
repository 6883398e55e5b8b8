"""Envoy's tracing: its OpenTelemetry tracer, the collector it exports to, and how its spans
are batched."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from envoy_data_plane.envoy.config.bootstrap.v3 import (
    LayeredRuntime,
    RuntimeLayer,
)
from envoy_data_plane.envoy.config.cluster.v3 import (
    Cluster,
)
from envoy_data_plane.envoy.config.core.v3 import (
    GrpcService,
    GrpcServiceEnvoyGrpc,
)
from envoy_data_plane.envoy.config.trace.v3 import OpenTelemetryConfig, TracingHttp
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManagerTracing,
)
from envoy_data_plane.envoy.type.v3 import Percent
from envoy_data_plane.google.protobuf import Any as AnyMessage
from envoy_data_plane.google.protobuf import Struct, Value

from extproc.config.model import TracingSettings
from extproc.envoyconfig.clusters import dns_cluster, http2_only

COLLECTOR_CLUSTER = "otel_collector"


DEFAULT_COLLECTOR = "http://127.0.0.1:4317"


ENVOY_SPAN_BATCH = 256
"""Spans an Envoy worker sends in one export call, at most (Envoy's default: 5)."""


ENVOY_SPAN_FLUSH_MS = 500
"""How long a span may wait for its batch (the processor's export delay too)."""


def span_batching() -> LayeredRuntime:
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


def envoy_tracing(spec: TracingSettings) -> HttpConnectionManagerTracing:
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


def collector_cluster(spec: TracingSettings) -> Cluster:
    url = urlsplit(collector_endpoint(spec))
    return dns_cluster(
        COLLECTOR_CLUSTER, url.hostname or "", url.port or 4317, options=http2_only()
    )
