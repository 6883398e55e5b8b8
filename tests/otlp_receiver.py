"""A small OTLP/gRPC receiver for tests and the benchmark: it keeps every export it gets, or
(for the benchmark) drops them, so that reading them costs the machine nothing more."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.harness import free_port


@dataclass
class Received:
    """What the receiver got: span exports and metric exports, raw and parsed."""

    raw: list[bytes] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    span_exports: list[tuple[str | None, int]] = field(default_factory=list)
    """(service, spans) of each span export call."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def wait_for_span(self, name: str, timeout: float) -> dict[str, Any]:
        """The first span called `name`, waiting up to `timeout` seconds for it."""
        with self.arrived:
            found = self.arrived.wait_for(
                lambda: next((s for s in self.spans if s["name"] == name), None), timeout
            )
        assert found is not None, f"no span {name!r} within {timeout} s"
        return found


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, received: Received | None) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        if self._received is None:
            return trace_service_pb2.ExportTraceServiceResponse()
        with self._received.lock:
            self._received.raw.append(request.SerializeToString())
            for resource_spans in request.resource_spans:
                service = _attributes(resource_spans.resource.attributes).get("service.name")
                count = sum(len(scope.spans) for scope in resource_spans.scope_spans)
                self._received.span_exports.append((service, count))
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self._received.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "attributes": _attributes(span.attributes),
                                "error": span.status.code == span.status.STATUS_CODE_ERROR,
                            }
                        )
            self._received.arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, received: Received | None) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        if self._received is None:
            return metrics_service_pb2.ExportMetricsServiceResponse()
        with self._received.lock:
            self._received.raw.append(request.SerializeToString())
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    self._received.metric_names.update(m.name for m in scope.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@contextmanager
def otlp_receiver(*, keep: bool = True) -> Iterator[tuple[str, Received]]:
    """(endpoint URL, what it received) for a receiver on a free loopback port; with
    `keep=False` it receives nothing (every export is answered and dropped)."""
    received = Received()
    kept = received if keep else None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(kept), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(kept), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(None)
