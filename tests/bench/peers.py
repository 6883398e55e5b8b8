"""`make bench-peers`: this gateway against the gateways users would pick instead.

LiteLLM's proxy (Python, in its own virtualenv) and Portkey's gateway (Node, from npm), at
pinned versions, run beside Envoy alone and this gateway — plain, and in the production
profile (four limits on a local Redis, every call traced to an OTLP receiver, an access log) —
on the same static upstream (nginx answering the same chat completion every time) and get
the same load from `hey`, in turn, ROUNDS times; medians of the rounds are printed with
ratios. Each does what it does by default for one OpenAI model: LiteLLM checks its master
key, Portkey takes the provider's key from the client (it has no keys of its own).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from tests.bench.run import (
    DEMO_KEY,
    Figures,
    Setup,
    configure,
    load,
    median,
    production_profile,
)
from tests.bench.static_upstream import static_upstream
from tests.harness import (
    ROOT,
    Process,
    envoy_only,
    free_port,
    mock_provider,
    redis_server,
    running_gateway,
)
from tests.otlp_receiver import otlp_receiver

ROUNDS = 3
CONNECTIONS = (1, 32)
LITELLM = ROOT / ".venv-peers" / "litellm" / "bin" / "litellm"
PORTKEY = ROOT / "tests/bench/peers/node_modules/@portkey-ai/gateway/build/start-server.js"
LOOPBACK = ROOT / "tests/bench/peers/loopback.cjs"
PROVIDER_KEY = "sk-mock-provider-key"
READY_TIMEOUT = 120.0


def wait_until_answering(process: Process, url: str) -> None:
    """Poll `url` until it answers, failing if the process ends or the deadline passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.popen.args[:2]} exited ({process.popen.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT:.0f}s")


@contextmanager
def running_peer(
    argv: list[str], environment: dict[str, str], log: Path, port: int, ready_path: str
) -> Iterator[tuple[Process, str]]:
    """A peer gateway on `port`, once `ready_path` answers; stopped on exit."""
    process = Process(argv, stderr_path=log, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, url + ready_path)
        yield process, url
    finally:
        process.stop()


@contextmanager
def litellm_proxy(upstream_url: str, directory: Path) -> Iterator[tuple[Process, str]]:
    config = directory / "litellm.yaml"
    model = {
        "model_name": "gpt-4o",
        "litellm_params": {
            "model": "openai/gpt-4o",
            "api_base": f"{upstream_url}/v1",
            "api_key": PROVIDER_KEY,
        },
    }
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [model],
                "general_settings": {"master_key": DEMO_KEY},
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    port = free_port()
    argv = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    # The model price list ships in the package; without this it is fetched at start-up.
    environment = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with running_peer(
        argv, environment, directory / "litellm.log", port, "/health/liveliness"
    ) as peer:
        yield peer


@contextmanager
def portkey_gateway(directory: Path) -> Iterator[tuple[Process, str]]:
    port = free_port()
    argv = ["node", "-r", str(LOOPBACK), str(PORTKEY), f"--port={port}", "--headless"]
    environment = {"NODE_ENV": "production"}  # no browser console for requests
    with running_peer(argv, environment, directory / "portkey.log", port, "/") as peer:
        yield peer


def main() -> int:
    runs: dict[tuple[str, int], list[Figures]] = {}
    with (
        tempfile.TemporaryDirectory() as workdir,
        mock_provider() as mock,
        redis_server() as redis,
        otlp_receiver(keep=False) as (collector, _),
        static_upstream(Path(workdir)) as (upstream, upstream_url),
    ):
        directory = Path(workdir)
        config = configure(upstream_url, mock.url, directory, "plain")
        production = production_profile(upstream_url, mock.url, directory, redis.url, collector)
        upstream_pid = upstream.popen.pid  # every setup's provider
        with (
            envoy_only(config, directory, processor=None) as (alone, alone_url),
            running_gateway(config, directory / "gateway.log") as gateway,
            running_gateway(production, directory / "production.log") as in_production,
            litellm_proxy(upstream_url, directory) as (litellm, litellm_url),
            portkey_gateway(directory) as (portkey, portkey_url),
        ):
            portkey_headers = (
                "x-portkey-provider: openai",
                f"x-portkey-custom-host: {upstream_url}/v1",
            )
            targets = {
                "envoy alone": Setup(alone_url, [alone.popen.pid, upstream_pid]),
                "this gateway": Setup(gateway.url, [gateway.process.popen.pid, upstream_pid]),
                "production": Setup(
                    in_production.url,
                    [in_production.process.popen.pid, upstream_pid, redis.process.popen.pid],
                ),
                "litellm": Setup(litellm_url, [litellm.popen.pid, upstream_pid]),
                "portkey": Setup(
                    portkey_url,
                    [portkey.popen.pid, upstream_pid],
                    extra=portkey_headers,
                    key=PROVIDER_KEY,
                ),
            }
            for _ in range(ROUNDS):
                for connections in CONNECTIONS:
                    for name, setup in targets.items():
                        figures = load(setup.url + "/v1/chat/completions", connections, setup)
                        runs.setdefault((name, connections), []).append(figures)
    report({key: median(value) for key, value in runs.items()})
    return 0


def own_cpu(figures: Figures) -> float:
    """CPU µs per request of the setup's own processes (the shared upstream apart; Redis
    counts for the production profile)."""
    return sum(cpu for role, cpu in figures.cpu_us.items() if role != "upstream")


def report(results: dict[tuple[str, int], Figures]) -> None:
    print(f"\nmedians of {ROUNDS} alternating rounds (hey), one non-streamed chat call each")
    print(
        f"{'setup':<13} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        "   CPU µs/request: own processes (static upstream)"
    )
    for (name, connections), figures in sorted(results.items(), key=lambda item: item[0][1]):
        print(
            f"{name:<13} {connections:>5} {figures.requests_per_second:>8.0f} "
            f"{figures.p50_ms:>8.2f} {figures.p99_ms:>8.2f} {figures.errors:>7}"
            f"   {own_cpu(figures):6.0f} ({figures.cpu_us['upstream']:4.0f})"
        )
    alone = results["envoy alone", 1]
    print(
        "\nadded latency @1 conn, over Envoy alone: p50 (read within hey's 0.1 ms steps) and mean"
        " (1 / req/s: one request at a time)"
    )
    for name in ("this gateway", "production", "litellm", "portkey"):
        figures = results[name, 1]
        mean = 1000 / figures.requests_per_second - 1000 / alone.requests_per_second
        print(f"  {name:<13} p50 +{figures.p50_ms - alone.p50_ms:.2f} ms   mean +{mean:.3f} ms")
    for ours_name in ("this gateway", "production"):
        ours = results[ours_name, 32]
        print(f"\n@32 conns, {ours_name} against each: req/s ratio, CPU per request ratio")
        for name in ("envoy alone", "this gateway", "litellm", "portkey"):
            if name == ours_name:
                continue
            theirs = results[name, 32]
            speed = ours.requests_per_second / theirs.requests_per_second
            cost = own_cpu(ours) / own_cpu(theirs)
            print(f"  vs {name:<13} {speed:5.2f}x req/s   {cost:5.2f}x CPU")


if __name__ == "__main__":
    raise SystemExit(main())
