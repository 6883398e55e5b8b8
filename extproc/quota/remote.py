"""Reading the counters of a running processor over its gRPC port.

The memory store lives inside the processor, so `extproc usage` asks the processor for it:
a small unary method whose request and answer are JSON (a list of counter names, a list of
values), registered beside ext_proc without any generated code.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import orjson

from extproc.quota.store import QuotaStore, StoreUnavailable

SERVICE = "extproc.quota.v1.Counters"
METHOD = "Read"


def counters_handler(store: QuotaStore) -> grpc.GenericRpcHandler[bytes, bytes]:
    async def read(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        names = orjson.loads(request)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected a list of names")
        return orjson.dumps(await store.read(names))

    return grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(read)}
    )


async def read_remote(address: str, counters: Sequence[str], *, timeout: float) -> list[int]:
    """Counter values from the processor listening at `address`; raises StoreUnavailable."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            f"/{SERVICE}/{METHOD}", request_serializer=None, response_deserializer=None
        )
        try:
            answer = await call(orjson.dumps(list(counters)), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise StoreUnavailable(f"processor at {address}: {error.details()}") from None
    values = orjson.loads(answer)
    return [int(value) for value in values]
