"""ext_proc messages built by hand, and one exchange of them over a channel."""

from __future__ import annotations

import grpc

from extproc.envoyapi.protos.envoy.config.core.v3 import base_pb2
from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.server import SERVICE


def headers(*pairs: tuple[str, str], end_of_stream: bool = False) -> ext_proc.ProcessingRequest:
    header_map = base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
    )
    return ext_proc.ProcessingRequest(
        request_headers=ext_proc.HttpHeaders(headers=header_map, end_of_stream=end_of_stream)
    )


def body(data: bytes) -> ext_proc.ProcessingRequest:
    return ext_proc.ProcessingRequest(request_body=ext_proc.HttpBody(body=data, end_of_stream=True))


async def exchange(
    channel: grpc.aio.Channel, *requests: ext_proc.ProcessingRequest
) -> list[ext_proc.ProcessingResponse]:
    process = channel.stream_stream(
        f"/{SERVICE}/Process",
        request_serializer=ext_proc.ProcessingRequest.SerializeToString,
        response_deserializer=ext_proc.ProcessingResponse.FromString,
    )
    return [response async for response in process(iter(requests))]


def response_headers(*pairs: tuple[str, str]) -> ext_proc.ProcessingRequest:
    header_map = base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
    )
    return ext_proc.ProcessingRequest(
        response_headers=ext_proc.HttpHeaders(headers=header_map, end_of_stream=False)
    )


def response_body(data: bytes, *, end: bool = True) -> ext_proc.ProcessingRequest:
    return ext_proc.ProcessingRequest(response_body=ext_proc.HttpBody(body=data, end_of_stream=end))


def set_headers(mutation: ext_proc.HeaderMutation) -> dict[str, str]:
    return {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}
