"""The processor of the module's `gateway` fixture, served on a Unix socket, and a grpcio
channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from extproc.config import Gateway
from extproc.config.watcher import GatewaySource
from extproc.server import ProcessorServer, open_services
from extproc.telemetry.sdk import start_sdk


@pytest.fixture
async def channel(gateway: Gateway, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    address = f"unix:{tmp_path}/p.sock"
    source = GatewaySource(gateway)
    server = ProcessorServer(
        source, open_services(gateway, source, start_sdk(gateway.telemetry)), address
    )
    await server.start()
    limit = [(f"grpc.max_{way}_message_length", 16 * 1024 * 1024) for way in ("send", "receive")]
    async with grpc.aio.insecure_channel(address, options=limit) as channel:
        yield channel
    await server.stop(0)
