"""The OpenTelemetry SDK set up from the configuration: a tracer that continues Envoy's
traces, GenAI metrics (Prometheus and/or OTLP), and the access log.

Names follow the OpenTelemetry GenAI semantic conventions; gateway-specific attributes use
the `extproc.` prefix. Keys appear only by id, never by value.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import start_http_server

from extproc.config.schema import TelemetrySpec
from extproc.headers import TRACEPARENT
from extproc.telemetry.access_log import access_line, open_access_log
from extproc.telemetry.record import RequestRecord
from extproc.usage import Usage

log = logging.getLogger(__name__)

SPAN_EXPORT_DELAY_MS = 500
CONTENT_LIMIT = 16 * 1024
"""Characters of prompt or completion recorded on a span, at most."""

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

Counts = Callable[[], Mapping[str, int]]


class Telemetry:
    """Per-process telemetry; `begin` and `finish` bracket each request."""

    def __init__(
        self,
        spec: TelemetrySpec,
        *,
        worker: int = 0,
        store_errors: Counts = dict,
        reloads: Counts = dict,
    ) -> None:
        resource = Resource.create({"service.name": spec.tracing.service_name})
        self._record_content = spec.tracing.record_content
        self._redactions = [re.compile(pattern) for pattern in spec.tracing.redact]
        self._tracer_provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if spec.tracing.active(os.environ):
            self._tracer_provider = TracerProvider(
                resource=resource,
                sampler=ParentBased(TraceIdRatioBased(spec.tracing.sampling)),
            )
            exporter = OTLPSpanExporter(**_otlp_target(spec.tracing.endpoint))
            self._tracer_provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=SPAN_EXPORT_DELAY_MS)
            )
            self._tracer = self._tracer_provider.get_tracer("extproc")
        readers: list[MetricReader] = []
        metrics = spec.metrics
        if metrics.prometheus_port is not None:
            readers.append(PrometheusMetricReader())
            start_http_server(metrics.prometheus_port + worker, metrics.prometheus_address)
        if metrics.otlp:
            exporter_ = OTLPMetricExporter(**_otlp_target(spec.tracing.endpoint))
            interval = int(metrics.export_interval * 1000)
            readers.append(PeriodicExportingMetricReader(exporter_, interval))
        views = [
            View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(bounds))
            for name, bounds in _BUCKETS.items()
        ]
        self._meter_provider = MeterProvider(metric_readers=readers, resource=resource, views=views)
        self._metered = bool(readers)
        """Measurements nothing reads are skipped: they cost 5 % of a plain call's CPU."""
        meter = self._meter_provider.get_meter("extproc")
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per request"
        )
        self._duration = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s", description="Request duration"
        )
        self._first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s", description="Time to first token"
        )
        self._per_token = meter.create_histogram(
            "gen_ai.server.time_per_output_token", unit="s", description="Time per output token"
        )
        self._requests = meter.create_counter(
            "extproc.requests", unit="{request}", description="Requests by status and error type"
        )
        self._cost = meter.create_counter(
            "extproc.cost.usd", unit="{USD}", description="Money spent, priced with `prices`"
        )
        self._refusals = meter.create_counter(
            "extproc.quota.refusals", unit="{request}", description="Requests refused by quota"
        )
        meter.create_observable_counter(
            "extproc.quota.store_errors",
            callbacks=[_observe(store_errors, "extproc.quota.policy")],
            unit="{error}",
            description="Quota store operations that failed, by the failure policy applied",
        )
        meter.create_observable_counter(
            "extproc.config.reloads",
            callbacks=[_observe(reloads, "extproc.reload.result")],
            unit="{reload}",
            description="Configuration reloads by result",
        )
        self._access_log: TextIO | None = open_access_log(spec.access_log)

    def begin(
        self, record: RequestRecord, metadata: Iterable[tuple[str, Any]], headers: Mapping[str, Any]
    ) -> Span | None:
        """The request's span, child of Envoy's span for the ext_proc call (its context
        travels in the gRPC metadata), else of the HTTP request's own `traceparent`."""
        if self._tracer is None:
            return None
        carrier = {name: value for name, value in metadata if isinstance(value, str)}
        if TRACEPARENT not in carrier:
            carrier = {name: values[0] for name, values in headers.items() if values}
        parent = TraceContextTextMapPropagator().extract(carrier)
        return self._tracer.start_span(
            "gateway.request", context=parent, kind=SpanKind.CLIENT, start_time=record.started_ns
        )

    def child(self, parent: Span | None, name: str) -> Span | None:
        if self._tracer is None or parent is None:
            return None
        return self._tracer.start_span(name, context=trace.set_span_in_context(parent, Context()))

    @property
    def records_content(self) -> bool:
        return self._record_content

    def content(self, text: str) -> str | None:
        """Text as it may be recorded on a span, or None when content is not recorded."""
        if not self._record_content:
            return None
        for pattern in self._redactions:
            text = pattern.sub("[REDACTED]", text)
        return text[:CONTENT_LIMIT]

    def finish(self, record: RequestRecord, span: Span | None) -> None:
        if span is not None:
            _end_span(span, record)
        if self._metered:
            if record.operation is not None:
                self._record_metrics(record)
            self._count_request(record)
        if self._access_log is not None:
            self._access_log.write(access_line(record).decode() + "\n")

    def shutdown(self) -> None:
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        self._meter_provider.shutdown()
        if self._access_log is not None:
            self._access_log.flush()

    def _record_metrics(self, record: RequestRecord) -> None:
        attributes = _attributes(
            {
                "gen_ai.operation.name": record.operation,
                "gen_ai.provider.name": record.provider_name,
                "gen_ai.request.model": record.upstream_model,
                "extproc.model.alias": record.alias,
                "error.type": record.error_type,
            }
        )
        self._duration.record(record.elapsed(), attributes)
        if record.first_token is not None:
            self._first_token.record(record.first_token, attributes)
        if record.per_output_token is not None:
            self._per_token.record(record.per_output_token, attributes)
        owner = _attributes({"extproc.key.id": record.key_id, "extproc.team": record.team})
        if record.usage is not None:
            for kind, tokens in (
                ("input", record.usage.input_tokens),
                ("output", record.usage.output_tokens),
            ):
                self._tokens.record(tokens, attributes | owner | {"gen_ai.token.type": kind})
        if record.cost_usd:
            self._cost.add(record.cost_usd, owner | {"extproc.model.alias": record.alias or ""})

    def _count_request(self, record: RequestRecord) -> None:
        self._requests.add(
            1,
            _attributes(
                {
                    "http.response.status_code": record.status,
                    "error.type": record.error_type,
                    "extproc.model.alias": record.alias,
                }
            ),
        )
        if record.refused_scope is not None:
            self._refusals.add(
                1,
                _attributes(
                    {
                        "extproc.quota.scope": record.refused_scope,
                        "extproc.quota.metric": record.refused_metric,
                        "extproc.key.id": record.key_id,
                    }
                ),
            )


def _end_span(span: Span, record: RequestRecord) -> None:
    if record.operation is not None:
        span.update_name(f"{record.operation} {record.upstream_model or record.alias}")
    span.set_attributes(
        _attributes(
            {
                "gen_ai.operation.name": record.operation,
                "gen_ai.provider.name": record.provider_name,
                "gen_ai.request.model": record.upstream_model,
                "gen_ai.response.model": record.response_model,
                **_usage_attributes(record.usage),
                "gen_ai.input.messages": record.input_content,
                "gen_ai.output.messages": record.output_content,
                "http.request.method": record.method,
                "url.path": record.path,
                "http.response.status_code": record.status,
                "error.type": record.error_type,
                "extproc.request.id": record.request_id,
                "extproc.key.id": record.key_id,
                "extproc.team": record.team,
                "extproc.model.alias": record.alias,
                "extproc.target": f"{record.provider}/{record.upstream_model}"
                if record.provider
                else None,
                "extproc.stream": record.stream if record.operation else None,
                "extproc.quota.decision": record.quota,
                "extproc.cost.usd": record.cost_usd,
                "gen_ai.server.time_to_first_token": record.first_token,
            }
        )
    )
    if record.error_type is not None:
        span.set_status(Status(StatusCode.ERROR, record.error_type))
    span.end()


def _usage_attributes(usage: Usage | None) -> dict[str, int | None]:
    if usage is None:
        return {}
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
    }


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _observe(counts: Counts, label: str) -> Callable[[CallbackOptions], Sequence[Observation]]:
    def callback(_: CallbackOptions) -> Sequence[Observation]:
        return [Observation(count, {label: name}) for name, count in counts().items()]

    return callback


def _otlp_target(endpoint: str | None) -> dict[str, Any]:
    """Exporter arguments: the configured endpoint, or none (the exporter then follows the
    standard OTEL_EXPORTER_OTLP_* variables)."""
    if endpoint is None:
        return {}
    return {"endpoint": endpoint, "insecure": endpoint.startswith("http://")}
