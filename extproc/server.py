"""The gRPC server: ext_proc `Process` streams and the standard health service."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.config import Gateway
from extproc.config.watcher import GatewaySource
from extproc.envoyapi.messages import ProcessingRequest, ProcessingResponse
from extproc.quota.remote import counters_handler
from extproc.quota.stores import open_ledger
from extproc.stream import Exchange, Services
from extproc.telemetry.setup import Telemetry

log = logging.getLogger(__name__)

GRPC_OVERHEAD = 1024 * 1024
"""Room above the body limit for the rest of a ProcessingRequest (headers, framing)."""
SHUTDOWN_GRACE = 10.0


SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
"""The gRPC service Envoy's ext_proc filter calls; its one method is `Process`."""


class Processor:
    """ext_proc service: one Exchange per stream (one stream per HTTP request)."""

    def __init__(self, source: GatewaySource, services: Services) -> None:
        self._source = source
        self._services = services

    async def process(
        self,
        request_iterator: AsyncIterator[ProcessingRequest],
        context: grpc.aio.ServicerContext[ProcessingRequest, ProcessingResponse],
    ) -> AsyncIterator[ProcessingResponse]:
        metadata = context.invocation_metadata() or ()
        exchange = Exchange(self._source.current, self._services, metadata)
        try:
            async for request in request_iterator:
                response = await exchange.process(request)
                if response is not None:
                    yield response
        finally:
            # Also on cancellation (a client or provider cut the request): settle what is held.
            await asyncio.shield(exchange.finish())


def build_server(
    source: GatewaySource, services: Services, address: str
) -> tuple[grpc.aio.Server, health.HealthServicer]:
    """A server bound to `address` (`host:port` or `unix:/path`), not yet started."""
    limit = source.current.listen.max_request_body + GRPC_OVERHEAD
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    processor = Processor(source, services)
    process = grpc.stream_stream_rpc_method_handler(
        processor.process,
        request_deserializer=ProcessingRequest.FromString,
        response_serializer=ProcessingResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(SERVICE, {"Process": process}),
            counters_handler(services.ledger.store),
        ]
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(address) == 0 and not address.startswith("unix:"):
        raise OSError(f"cannot listen on {address}")
    return server, health_servicer


def open_services(gateway: Gateway, source: GatewaySource, *, worker: int = 0) -> Services:
    ledger = open_ledger(gateway)
    telemetry = Telemetry(
        gateway.telemetry,
        worker=worker,
        store_errors=lambda: ledger.store_errors,
        reloads=lambda: source.reloads,
    )
    return Services(ledger, telemetry, random.Random())  # noqa: S311 - load spreading


async def serve(gateway: Gateway, address: str, *, worker: int = 0) -> None:
    """Serve until SIGINT or SIGTERM, then drain: health says NOT_SERVING, streams finish.
    The configuration file is followed meanwhile (see `extproc.config.watcher`)."""
    source = GatewaySource(gateway)
    services = open_services(gateway, source, worker=worker)
    server, health_servicer = build_server(source, services, address)
    await server.start()
    follow = asyncio.create_task(source.follow())
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("processor listening on %s", address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("processor on %s stopping", address)
    follow.cancel()
    health_servicer.enter_graceful_shutdown()
    await server.stop(SHUTDOWN_GRACE)
    await services.ledger.store.close()
    services.telemetry.shutdown()
