"""`make bench-memory`: the processor's resident memory over 200,000 requests.

One gateway in the production profile — four limits on a Redis store (every request
reserves and settles four counters), every request traced to an OTLP receiver, an access log
— takes SLICES slices of requests from `hey`, alternating a plain call (to nginx) and a
translated one (OpenAI client, Anthropic-kind alias, on the mock); the processor's RSS is read
from /proc after a warm-up and after each slice. A leak shows as steady growth; allocator
noise as a few percent either way.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.bench.cpu import processes
from tests.bench.run import BODY, DEMO_KEY, TRANSLATED_BODY, production_profile
from tests.bench.static_upstream import static_upstream
from tests.harness import mock_provider, redis_server, running_gateway
from tests.otlp_receiver import otlp_receiver

WARM_UP = 10_000
SLICES = 10
PER_SLICE = 20_000
CONNECTIONS = 32


def processor_rss_kib(root: int) -> int:
    for pid, role in processes([root]):
        if role == "processor":
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            return int(line.split()[1])
    raise RuntimeError("no processor process under the gateway")


def send(url: str, count: int, body: str) -> None:
    """`count` requests; fails unless every one was answered 200."""
    output = subprocess.run(
        ["hey", "-n", str(count), "-c", str(CONNECTIONS), "-m", "POST",
         "-T", "application/json", "-d", body, "-disable-compression",
         "-H", f"Authorization: Bearer {DEMO_KEY}", url + "/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sent = count // CONNECTIONS * CONNECTIONS  # hey gives each connection count // c requests
    answered = f"[200]\t{sent} responses"
    if answered not in output:
        raise RuntimeError(f"not every request was answered 200:\n{output}")


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as workdir,
        mock_provider() as mock,
        static_upstream(Path(workdir)) as (_, upstream_url),
        redis_server() as redis,
        otlp_receiver(keep=False) as (collector, _),
    ):
        directory = Path(workdir)
        config = production_profile(upstream_url, mock.url, directory, redis.url, collector)
        with running_gateway(config, directory / "gateway.log") as gateway:
            root = gateway.process.popen.pid
            send(gateway.url, WARM_UP, BODY)
            baseline = processor_rss_kib(root)
            print(f"processor RSS after {WARM_UP:,} warm-up requests: {baseline / 1024:.1f} MiB")
            readings = []
            for index in range(SLICES):
                send(gateway.url, PER_SLICE, (BODY, TRANSLATED_BODY)[index % 2])
                rss = processor_rss_kib(root)
                readings.append(rss)
                change = (rss - baseline) * 100 / baseline
                done = (index + 1) * PER_SLICE
                print(f"  after {done:>7,} more: {rss / 1024:6.1f} MiB ({change:+.1f} %)")
    drift = (readings[-1] - baseline) * 100 / baseline
    peak = (max(readings) - baseline) * 100 / baseline
    print(f"\nRSS after {SLICES * PER_SLICE:,} requests: {drift:+.1f} % (peak {peak:+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
