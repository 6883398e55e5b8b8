"""A small gRPC server on asyncio for the processor's few methods (ext_proc streams, health,
counters): HTTP/2 framing, flow control and gRPC message framing, and nothing more.

Written for the processor rather than taken from a general gRPC library: a request through
Envoy opens one ext_proc stream and exchanges four messages on it, and with grpclib (h2) the
stream's set-up and frames cost more CPU than everything the gateway does with the request.
"""

from extproc.transport.call import Call, GrpcError, Method, Status
from extproc.transport.server import Server

__all__ = ["Call", "GrpcError", "Method", "Server", "Status"]
