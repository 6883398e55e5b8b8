"""The quota counters of a running processor, over its gRPC port.

The memory store lives inside the processor, so `extproc usage` asks the processor for it:
a small unary method whose request and answer are protobuf's own `ListValue` (counter names,
then their values), served beside ext_proc without any generated code.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf.struct_pb2 import ListValue

from extproc.config.address import parse_grpc_address
from extproc.config.model import ProcessorTls
from extproc.health import ClientTls
from extproc.quota.store import QuotaStore, StoreUnavailable
from extproc.transport import Call, GrpcError, Method, Status

SERVICE = "extproc.quota.v1.Counters"
METHOD = "Read"


class CountersService:
    """Answers a list of counter names with their values in the processor's store."""

    def __init__(self, store: QuotaStore) -> None:
        self._store = store

    async def read(self, call: Call[ListValue]) -> None:
        request = await call.recv()
        values = request.values if request is not None else ()
        if request is None or any(v.WhichOneof("kind") != "string_value" for v in values):
            raise GrpcError(Status.INVALID_ARGUMENT, "expected a list of names")
        names = [value.string_value for value in values]
        answer = ListValue()
        answer.extend(await self._store.read(names))
        await call.send(answer)

    def methods(self) -> dict[str, Method[ListValue]]:
        return {f"/{SERVICE}/{METHOD}": Method(self.read, ListValue)}


def client_tls(address: str, tls: ProcessorTls | None) -> ClientTls | None:
    """How a client (a probe, `extproc usage`) reaches the processor at `address`: with
    Envoy's certificate where the processor requires mTLS."""
    if tls is None or parse_grpc_address(address).socket_path is not None:
        return None
    return ClientTls(
        tls.ca_file.read_bytes(),
        tls.envoy_cert_file.read_bytes(),
        tls.envoy_key_file.read_bytes(),
        tls.server_name,
    )


async def read_remote(
    address: str, counters: Sequence[str], *, timeout: float, tls: ClientTls | None = None
) -> list[int]:
    """Counter values from the processor listening at `address`; raises StoreUnavailable."""
    channel = (
        grpc.aio.insecure_channel(address)
        if tls is None
        else grpc.aio.secure_channel(address, tls.credentials(), options=tls.options())
    )
    async with channel:
        call = channel.unary_unary(
            f"/{SERVICE}/{METHOD}",
            request_serializer=ListValue.SerializeToString,
            response_deserializer=ListValue.FromString,
        )
        request = ListValue()
        request.extend(counters)
        try:
            answer = await call(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise StoreUnavailable(f"processor at {address}: {error.details()}") from None
    return [int(value) for value in answer]
