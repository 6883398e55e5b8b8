"""`make bench-processor`: the processor alone, without Envoy — calls per second and CPU per
call for one worker and for two.

Each call is the ext_proc stream Envoy opens for a plain chat completion (request headers,
request body, response headers, response body: the four messages, as Envoy sends them), sent
whole by h2load (nghttp2's HTTP/2 load generator, in C: it costs the machine little) to the
processor's gRPC endpoint, ROUNDS times for DURATION seconds at CONNECTIONS connections and
STREAMS streams each. One call is first checked through grpcio: the processor must answer it
as it answers Envoy (the provider's key set, the completion passed). With two workers, each
gets its own h2load. h2load's CPU is reported too: on two cores it competes with the workers.
"""

from __future__ import annotations

import re
import resource
import socket
import statistics
import subprocess
import tempfile
from pathlib import Path

import grpc
import orjson

from extproc.envoyapi.protos.envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from extproc.server import SERVICE
from tests.bench.cpu import cpu_by_role
from tests.bench.run import BODY, DEMO_KEY, configure
from tests.bench.static_upstream import COMPLETION
from tests.harness import Process, extproc, free_port, mock_provider
from tests.stream.support import body, headers, response_body, response_headers

ROUNDS = 3
DURATION_SECONDS = 5
CONNECTIONS = 8
STREAMS = 8
"""Concurrent calls per connection (Envoy multiplexes its ext_proc streams the same way)."""
PROCESS = f"/{SERVICE}/Process"


def call_messages() -> list[ext_proc.ProcessingRequest]:
    return [
        headers(
            (":authority", "127.0.0.1:10000"),
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":scheme", "http"),
            ("authorization", f"Bearer {DEMO_KEY}"),
            ("content-type", "application/json"),
            ("x-request-id", "7c1b0c0e-3b8a-4f5e-9d2a-1f0e6b7a9c11"),
        ),
        body(BODY.encode()),
        response_headers((":status", "200"), ("content-type", "application/json")),
        response_body(orjson.dumps(COMPLETION)),
    ]


def grpc_body(messages: list[ext_proc.ProcessingRequest]) -> bytes:
    """The messages as one gRPC request body (each length-prefixed, uncompressed)."""
    framed = []
    for message in messages:
        data = message.SerializeToString()
        framed.append(b"\x00" + len(data).to_bytes(4, "big") + data)
    return b"".join(framed)


def check_one_call(address: str) -> None:
    """The processor answers the recorded call as it answers Envoy's."""
    with grpc.insecure_channel(address) as channel:
        process = channel.stream_stream(
            PROCESS,
            request_serializer=ext_proc.ProcessingRequest.SerializeToString,
            response_deserializer=ext_proc.ProcessingResponse.FromString,
        )
        answers = list(process(iter(call_messages()), timeout=10))
    kinds = [answer.WhichOneof("response") for answer in answers]
    expected = ["request_headers", "request_body", "response_headers", "response_body"]
    if kinds != expected:
        raise RuntimeError(f"the processor answered {kinds}, not {expected}: {answers}")


def h2load(port: int, request: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["h2load", "-D", str(DURATION_SECONDS), "-c", str(CONNECTIONS), "-m", str(STREAMS),
         "-d", str(request), "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://127.0.0.1:{port}{PROCESS}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def children_cpu() -> float:
    """CPU seconds of the children waited for so far (the h2load runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_round(ports: list[int], request: Path, root: int) -> tuple[float, float, float]:
    """(calls per second, processor CPU µs per call, h2load CPU µs per call)."""
    before, client_before = cpu_by_role([root])["processor"], children_cpu()
    loads = [h2load(port, request) for port in ports]
    outputs = [load.communicate()[0] for load in loads]
    spent = cpu_by_role([root])["processor"] - before
    client = children_cpu() - client_before
    calls = 0
    for output in outputs:
        done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", output)
        if done is None or done[1] != done[2]:
            raise RuntimeError(f"h2load saw failed calls:\n{output}")
        calls += int(done[2])
    return calls / DURATION_SECONDS, spent * 1e6 / calls, client * 1e6 / calls


def main() -> int:
    results: dict[int, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as workdir, mock_provider() as mock:
        directory = Path(workdir)
        config = configure(mock.url, mock.url, directory, "processor")
        request = directory / "call.bin"
        request.write_bytes(grpc_body(call_messages()))
        for workers in (1, 2):
            port = free_port() if workers == 1 else free_port_pair()
            argv = [*extproc(), "serve", "--config", str(config),
                    "--address", f"127.0.0.1:{port}", "--workers", str(workers)]  # fmt: skip
            server = Process(argv, stderr_path=directory / f"serve-{workers}.log")
            try:
                ports = [port + worker for worker in range(workers)]
                for each in ports:
                    wait_until_serving(f"127.0.0.1:{each}")
                    check_one_call(f"127.0.0.1:{each}")
                one_round(ports, request, server.popen.pid)  # warm-up
                results[workers] = [
                    one_round(ports, request, server.popen.pid) for _ in range(ROUNDS)
                ]
            finally:
                server.stop()
    report(results)
    return 0


def free_port_pair() -> int:
    """A port whose next one is free too (worker i listens on port + i)."""
    while True:
        port = free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def wait_until_serving(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)


def report(results: dict[int, list[tuple[float, float, float]]]) -> None:
    print(
        f"\nthe processor alone (no Envoy): medians of {ROUNDS} rounds of {DURATION_SECONDS}s,"
        f" h2load with {CONNECTIONS} connections x {STREAMS} streams per worker"
    )
    print(f"{'workers':>8} {'calls/s':>9} {'processor µs/call':>18} {'h2load µs/call':>15}")
    medians = {}
    for workers, rounds in results.items():
        rate = statistics.median(r[0] for r in rounds)
        cost = statistics.median(r[1] for r in rounds)
        client = statistics.median(r[2] for r in rounds)
        medians[workers] = rate
        print(f"{workers:>8} {rate:>9.0f} {cost:>18.0f} {client:>15.0f}")
    print(f"  2 workers / 1 worker: {medians[2] / medians[1]:.2f}x [>= 1.70x when each has a core]")


if __name__ == "__main__":
    raise SystemExit(main())
