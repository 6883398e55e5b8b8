"""A provider that costs next to nothing: nginx answering every request with the same OpenAI
chat completion. Throughput rows use it, so that what stands in for the provider does not hold
back the setups it serves (the Python mock would: it shares the cores, and costs more per call
than Envoy alone)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from tests.harness import START_TIMEOUT, Process, free_port

COMPLETION = {
    "id": "chatcmpl-static",
    "object": "chat.completion",
    "created": 1764892800,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from a static upstream."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20},
}


def _config(directory: Path, port: int) -> str:
    return f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory};
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{orjson.dumps(COMPLETION).decode()}';
        }}
    }}
}}
"""


@contextmanager
def static_upstream(directory: Path) -> Iterator[tuple[Process, str]]:
    """nginx's master process and URL, for as long as the block runs (`make bench`
    installs nginx)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(_config(directory, port))
    process = Process([binary, "-c", str(config), "-e", str(directory / "nginx-error.log")])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if time.monotonic() > deadline or process.popen.poll() is not None:
                raise RuntimeError(f"nginx did not start: {config}")
            time.sleep(0.05)
        yield process, url
    finally:
        process.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False
