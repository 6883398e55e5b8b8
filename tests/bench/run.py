"""`make bench`: Envoy alone against the full gateway, same mock provider, same load, one run.

Both setups run side by side and are loaded in turn by `hey`, ROUNDS times; medians of the
rounds are printed with the ratios to Envoy alone. A control row loads Envoy's admin endpoint
(no Python anywhere) to show how much the machine itself stalls during the run: on shared
virtual machines, wake-ups now and then take hundreds of milliseconds, which lands in the
p99 of every setup. Read p50 and the ratios; compare only figures from the same run.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.harness import ROOT, envoy_only, mock_provider, running_gateway

DURATION = "5s"
ROUNDS = 3
CONNECTIONS = (1, 32)
DEMO_KEY = "sk-demo-gateway-key"
BODY = '{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello in one sentence."}]}'


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def load(url: str, connections: int, *, post: bool = True) -> Figures:
    request = ["-m", "POST", "-T", "application/json", "-d", BODY] if post else []
    headers = [
        "-H", f"Authorization: Bearer {DEMO_KEY}",
        # Envoy alone routes on the header the processor would set; the gateway strips it.
        "-H", "x-extproc-route: mock",
    ]  # fmt: skip
    output = subprocess.run(
        ["hey", "-z", DURATION, "-c", str(connections), *request, *headers, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    statuses = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", output))
    failures = re.findall(r"\[(\d+)\]\s+Get|\[(\d+)\]\s+Post", output)
    return Figures(
        requests_per_second=float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        p50_ms=float(_find(r"50% in ([\d.]+) secs", output)) * 1000,
        p90_ms=float(_find(r"90% in ([\d.]+) secs", output)) * 1000,
        p99_ms=float(_find(r"99% in ([\d.]+) secs", output)) * 1000,
        errors=sum(int(n) for code, n in statuses.items() if code != "200") + len(failures),
    )


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"hey printed no {pattern!r}:\n{text}")
    return match.group(1)


def median(runs: list[Figures]) -> Figures:
    return Figures(
        requests_per_second=statistics.median(run.requests_per_second for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p90_ms=statistics.median(run.p90_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        errors=sum(run.errors for run in runs),
    )


def configure(mock_url: str, directory: Path) -> Path:
    document = yaml.safe_load((ROOT / "examples" / "gateway.yaml").read_text())
    mock = document["providers"]["mock"]
    mock["base_url"] = mock_url
    mock["api_key"] = "${file:%s}" % (ROOT / "examples/secrets/mock-provider-key")
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def admin_url(directory: Path) -> str:
    return "http://" + (directory / "envoy-only-admin").read_text().strip() + "/ready"


def main() -> int:
    runs: dict[tuple[str, int], list[Figures]] = {}
    with tempfile.TemporaryDirectory() as workdir, mock_provider() as mock:
        directory = Path(workdir)
        config = configure(mock.url, directory)
        with (
            envoy_only(config, directory, processor=None) as (_, alone_url),
            running_gateway(config, directory / "gateway.log") as gateway,
        ):
            targets = {"envoy alone": alone_url, "gateway": gateway.url}
            for _ in range(ROUNDS):
                runs.setdefault(("control", 1), []).append(
                    load(admin_url(directory), 1, post=False)
                )
                for connections in CONNECTIONS:
                    for name, url in targets.items():
                        figures = load(url + "/v1/chat/completions", connections)
                        runs.setdefault((name, connections), []).append(figures)
    results = {key: median(value) for key, value in runs.items()}
    report(results)
    return 0


def report(results: dict[tuple[str, int], Figures]) -> None:
    print(f"\nmedians of {ROUNDS} rounds of {DURATION} each (hey); control = Envoy admin /ready")
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
    added = gw1.p50_ms - alone1.p50_ms
    print("\nratios, gateway / Envoy alone (same machine, same run):")
    print(f"  p50 latency @1 conn    {gw1.p50_ms / alone1.p50_ms:5.2f}x  (+{added:.2f} ms)")
    print(f"  p90 latency @1 conn    {gw1.p90_ms / alone1.p90_ms:5.2f}x")
    print(
        f"  req/s @32 conns        {gw32.requests_per_second / alone32.requests_per_second:5.2f}x"
    )
    print(f"  p99 latency @32 conns  {gw32.p99_ms / alone32.p99_ms:5.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
