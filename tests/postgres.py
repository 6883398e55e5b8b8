"""A throwaway PostgreSQL server (Debian's `postgresql` package) on a free loopback port, in
a temporary directory: what the spend ledger's PostgreSQL tests run against."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness import Process, free_port, wait_until

USER = "extproc"


def postgres_bin() -> Path | None:
    """Where initdb and postgres are: on PATH, else Debian's versioned directory."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@dataclass
class PostgresServer:
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of the server stopped in its tracks (a stalled database host):
        connections stay open, nothing is answered until the block ends."""
        group = os.getpgid(self.process.popen.pid)
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(group, signal.SIGCONT)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    directory = Path(tempfile.mkdtemp(prefix="postgres-"))
    if as_user:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    port = free_port()
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust"]
        subprocess.run([*as_user, *initdb, "--no-sync"], check=True, capture_output=True)
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        settings += ["-c", f"unix_socket_directories={directory}"]
        process = Process(
            [*as_user, str(binaries / "postgres"), "-D", str(data), "-p", str(port), *settings],
            stderr_path=None,
        )
        try:
            _wait_ready(binaries, port, process)
            yield PostgresServer(port, process)
        finally:
            process.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(binaries: Path, port: int, process: Process) -> None:
    def ready() -> bool:
        if process.popen.poll() is not None:
            raise RuntimeError("postgres exited while starting")
        probe = [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", USER]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    wait_until(ready, "postgres did not become ready", timeout=60)
