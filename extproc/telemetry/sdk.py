"""The OpenTelemetry SDK of one processor, set up once by `serve` and shut down by it: the
tracer provider (when tracing is on), the meter provider with its readers (Prometheus, OTLP)
and the Prometheus endpoint. Only this module reads the environment (`OTEL_*`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import start_http_server

from extproc.config.model import TelemetrySettings
from extproc.telemetry.otlp_export import WireSpanExporter
from extproc.telemetry.tracer import Tracer

SPAN_EXPORT_DELAY_MS = 500
SCOPE = "extproc"

_BUCKETS: dict[str, list[float]] = {
    "gen_ai.client.token.usage": [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
    ],
    "gen_ai.server.request.duration": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai.server.time_to_first_token": [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
    ],
    "gen_ai.server.time_per_output_token": [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ],
}  # fmt: skip
"""Bucket boundaries recommended by the GenAI semantic conventions."""


@dataclass(frozen=True, slots=True)
class Sdk:
    tracer: Tracer | None
    """None when tracing is off: no span is made at all."""
    meter: metrics.Meter
    metered: bool
    """Whether any reader collects the metrics (if not, measuring them is wasted work)."""
    span_processor: BatchSpanProcessor | None
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters."""
        if self.span_processor is not None:
            self.span_processor.shutdown()  # type: ignore[no-untyped-call]
        self.meter_provider.shutdown()


def start_sdk(
    spec: TelemetrySettings, *, worker: int = 0, environ: Mapping[str, str] = os.environ
) -> Sdk:
    """`worker` i serves `/metrics` on the configured port + i."""
    resource = Resource.create({"service.name": spec.tracing.service_name})
    tracer, span_processor = None, None
    if spec.tracing.active(environ):
        exporter = WireSpanExporter(**_otlp_target(spec.tracing.endpoint))
        span_processor = BatchSpanProcessor(exporter, schedule_delay_millis=SPAN_EXPORT_DELAY_MS)
        scope = InstrumentationScope(SCOPE)
        tracer = Tracer(span_processor, resource, scope, spec.tracing.sampling)
    readers: list[MetricReader] = []
    settings = spec.metrics
    if settings.prometheus_port is not None:
        readers.append(PrometheusMetricReader())
        start_http_server(settings.prometheus_port + worker, settings.prometheus_address)
    if settings.otlp:
        metric_exporter = OTLPMetricExporter(**_otlp_target(spec.tracing.endpoint))
        interval = int(settings.export_interval * 1000)
        readers.append(PeriodicExportingMetricReader(metric_exporter, interval))
    views = [
        View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(bounds))
        for name, bounds in _BUCKETS.items()
    ]
    meter_provider = MeterProvider(metric_readers=readers, resource=resource, views=views)
    return Sdk(
        tracer=tracer,
        meter=meter_provider.get_meter(SCOPE),
        metered=bool(readers),
        span_processor=span_processor,
        meter_provider=meter_provider,
    )


def _otlp_target(endpoint: str | None) -> dict[str, Any]:
    """Exporter arguments: the configured endpoint, or none (the exporter then follows the
    standard OTEL_EXPORTER_OTLP_* variables)."""
    if endpoint is None:
        return {}
    return {"endpoint": endpoint, "insecure": endpoint.startswith("http://")}
