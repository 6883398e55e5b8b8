"""Probes for containers: is the processor serving, is Envoy ready (exit status 0 or 1).

Kubernetes runs them as exec probes because both listen only inside the pod: the processor
on a Unix socket, Envoy's admin on 127.0.0.1.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ClientTls:
    """A client certificate, and the CA the server's must chain to (PEM)."""

    ca: bytes
    cert: bytes
    key: bytes
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def processor_serving(address: str, tls: ClientTls | None = None) -> bool:
    """The processor's standard gRPC health service answers SERVING (over mTLS with `tls`)."""
    channel = (
        grpc.insecure_channel(address)
        if tls is None
        else grpc.secure_channel(address, tls.credentials(), options=tls.options())
    )
    with channel:
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
