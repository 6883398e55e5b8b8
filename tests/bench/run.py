"""`make bench`: Envoy alone against the full gateway, same mock provider, same load, one run.

Prints p50/p99 latency at 1 connection, req/s and p99 at 32 connections, and the ratios to
Envoy alone. The machine is shared and noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.harness import ROOT, envoy_only, mock_provider, running_gateway

DURATION = "4s"
ROUNDS = 3
"""Both setups run side by side and are loaded in turn, ROUNDS times; medians are reported."""
DEMO_KEY = "sk-demo-gateway-key"
SCRIPT = """
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one sentence."}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
-- Envoy alone routes on the header the processor would set; the gateway strips client copies.
wrk.headers["x-extproc-route"] = "mock"
""".replace("%s", DEMO_KEY)


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def load(url: str, connections: int, script: Path) -> Figures:
    threads = min(connections, 2)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "--latency",
         "-s", str(script), url + "/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: .*", output)
    return Figures(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        p90_ms=_milliseconds(re.search(r"^\s+90%\s+(\S+)", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        p99_ms=_milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        errors=int(errors.group(1)) if errors else 0 + (1 if socket_errors else 0),
    )


def _milliseconds(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def configure(mock_url: str, directory: Path) -> Path:
    document = yaml.safe_load((ROOT / "examples" / "gateway.yaml").read_text())
    document["providers"]["mock"]["base_url"] = mock_url
    document["providers"]["mock"]["api_key"] = "${file:%s}" % (
        ROOT / "examples/secrets/mock-provider-key"
    )
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def median(runs: list[Figures]) -> Figures:
    return Figures(
        requests_per_second=statistics.median(run.requests_per_second for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p90_ms=statistics.median(run.p90_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        errors=sum(run.errors for run in runs),
    )


def main() -> int:
    runs: dict[tuple[str, int], list[Figures]] = {}
    with tempfile.TemporaryDirectory() as workdir, mock_provider() as mock:
        directory = Path(workdir)
        script = directory / "post.lua"
        script.write_text(SCRIPT)
        config = configure(mock.url, directory)
        with (
            envoy_only(config, directory, processor=None) as (_, alone_url),
            running_gateway(config, directory / "gateway.log") as gateway,
        ):
            targets = {"envoy alone": alone_url, "gateway": gateway.url}
            for _ in range(ROUNDS):
                for connections in (1, 32):
                    for name, url in targets.items():
                        figures = load(url, connections, script)
                        runs.setdefault((name, connections), []).append(figures)
    results = {key: median(value) for key, value in runs.items()}
    print(f"\nmedians of {ROUNDS} rounds of {DURATION} each")
    columns = ("conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors")
    print(f"{'setup':<12} " + " ".join(f"{column:>8}" for column in columns))
    for (name, connections), figures in sorted(results.items(), key=lambda item: item[0][1]):
        print(
            f"{name:<12} {connections:>8} {figures.requests_per_second:>8.0f} "
            f"{figures.p50_ms:>8.2f} {figures.p90_ms:>8.2f} {figures.p99_ms:>8.2f} "
            f"{figures.errors:>8}"
        )
    alone1, gw1 = results["envoy alone", 1], results["gateway", 1]
    alone32, gw32 = results["envoy alone", 32], results["gateway", 32]
    print("\nratios, gateway / Envoy alone (same machine, same run):")
    added = gw1.p50_ms - alone1.p50_ms
    print(f"  p50 latency @1 conn    {gw1.p50_ms / alone1.p50_ms:5.2f}x  (+{added:.2f} ms)")
    print(f"  p90 latency @1 conn    {gw1.p90_ms / alone1.p90_ms:5.2f}x")
    print(f"  p99 latency @1 conn    {gw1.p99_ms / alone1.p99_ms:5.2f}x")
    print(
        f"  req/s @32 conns        {gw32.requests_per_second / alone32.requests_per_second:5.2f}x"
    )
    print(f"  p99 latency @32 conns  {gw32.p99_ms / alone32.p99_ms:5.2f}x")
    if any(figures.errors for figures in results.values()):
        print(
            "note: some requests failed (see errors): those rows compare less well", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
