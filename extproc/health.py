"""Probes for containers: is the processor serving, is Envoy ready (exit status 0 or 1).

Kubernetes runs them as exec probes because both listen only inside the pod: the processor
on a Unix socket, Envoy's admin on 127.0.0.1.
"""

from __future__ import annotations

import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBE_TIMEOUT = 2.0


def processor_serving(address: str) -> bool:
    """The processor's standard gRPC health service answers SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def envoy_ready(admin: str) -> bool:
    """Envoy's admin `/ready` answers 200 (listeners up, not draining)."""
    try:
        url = f"http://{admin}/ready"
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
