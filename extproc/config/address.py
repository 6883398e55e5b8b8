"""The processor's gRPC address, `unix:/path` or `host:port`, read in one place."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

UNIX = "unix:"


@dataclass(frozen=True, slots=True)
class GrpcAddress:
    socket_path: str | None
    """Set for a Unix socket; then host and port are unused."""
    host: str = ""
    port: int = 0

    @property
    def local(self) -> bool:
        """Only this machine (this pod) can reach it: a Unix socket, or a loopback address."""
        if self.socket_path is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name: whatever it resolves to, others may reach it


def worker_addresses(address: str, workers: int) -> list[str]:
    """The gRPC address of each worker: port+i, or the socket path + `.i` when several."""
    if workers == 1:
        return [address]
    parsed = parse_grpc_address(address)
    if parsed.socket_path is not None:
        return [f"{address}.{index}" for index in range(workers)]
    host = address.rpartition(":")[0]
    return [f"{host}:{parsed.port + index}" for index in range(workers)]


def parse_grpc_address(address: str) -> GrpcAddress:
    """Raises ValueError for anything but `unix:/path` or `host:port`."""
    if address.startswith(UNIX):
        path = address.removeprefix(UNIX)
        if not path:
            raise ValueError("address: unix: needs a socket path")
        return GrpcAddress(socket_path=path)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("address must be host:port or unix:/path")
    return GrpcAddress(socket_path=None, host=host.strip("[]"), port=int(port))
