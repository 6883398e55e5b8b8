"""`make bench`: Envoy alone against the full gateway, same provider, same load, one run.

Throughput and latency rows reach a static upstream (nginx answering the same OpenAI chat
completion every time), which costs next to nothing, so that what stands in for the provider
holds back no setup. Rows that need a provider's behaviour — a translated call,
a compressing provider, streams — reach the Python mock provider.

The gateway runs several times: plain, with limits on the memory store, with limits on a Redis
store (a local redis-server), with every request traced to an in-process OTLP receiver (by the
processor, as configured by default, and with Envoy's spans too), with callers known by a JWT
that Envoy verifies instead of a gateway key, and with every built-in guardrail detector
screening requests and answers (JSON and streams), and with every call recorded in a spend
ledger (SQLite), to show what quota checks, tracing, token identity, guardrails and the ledger
add. The plain gateway is also loaded with a call it translates (an OpenAI client to an alias
on an Anthropic-kind provider), with a call to an alias with fallback whose first target
answers (Envoy's retry policy; the attempt prepared by the request's own stream), with a client
that accepts gzip (Envoy compresses the answers), and with a provider that compresses although
it was asked not to (the processor inflates the answers).
All setups run side by side and are loaded in turn by `hey`, ROUNDS times; medians of the
rounds are printed with the ratios to Envoy alone. At 32 connections, each row with a
throughput target is also compared with its baseline loaded again just before it ("beside
it"), and at one connection each row with a latency target. A control row
loads Envoy's admin endpoint (no Python anywhere) to show how much the machine itself stalls
during the run: on shared virtual machines, wake-ups now and then take hundreds of
milliseconds, which lands in the p99 of every setup. Read p50 and the ratios; compare only
figures from the same run.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.bench.cpu import ROLES, cpu_by_role
from tests.bench.static_upstream import static_upstream
from tests.harness import (
    ROOT,
    envoy_only,
    gateway_yaml,
    mock_provider,
    redis_server,
    running_gateway,
)
from tests.mcp_server import mcp_server
from tests.otlp_receiver import otlp_receiver
from tests.tokens import Signer

DURATION_SECONDS = 5
ROUNDS = 3
CONNECTIONS = (1, 32)
DEMO_KEY = "sk-demo-gateway-key"
PROMPT = '"messages":[{"role":"user","content":"Say hello in one sentence."}]'
BODY = '{"model":"gpt-4o",' + PROMPT + "}"
TRANSLATED_BODY = '{"model":"claude-sonnet",' + PROMPT + "}"
"""The demo's alias on an Anthropic-kind provider (the same mock, speaking Messages)."""
LIVE_BODY = '{"model":"gpt-4o-live",' + PROMPT + "}"
"""The alias on the Python mock (for what only it does: compressing, streaming)."""
FALLBACK_BODY = '{"model":"smart",' + PROMPT + "}"
"""The demo's alias with fallback, on its happy path: the first target answers, and what
the row adds is Envoy's attempt machinery (the request's own stream prepares the attempt,
and Envoy's matcher skips the attempt's filter)."""
TOOL_CALL = (
    '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    '"params":{"name":"search","arguments":{"query":"envoy"}}}'
)
"""One MCP tool call, to a stateless MCP server (no session to open first)."""
MCP_HEADERS = ("Accept: application/json, text/event-stream", "MCP-Protocol-Version: 2025-06-18")
STREAMS_PER_ROUND = 40
PAIRED_CONNECTIONS = 32
"""Where a row with a throughput target is also compared with its baseline loaded just before
it; a row with a latency target is, at one connection."""
HEY_RESOLUTION_MS = 0.1
"""hey writes each response time in seconds with four decimals."""
JWT_ISSUER, JWT_AUDIENCE = "https://login.bench.test", "llm-gateway"


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    cpu_us: dict[str, float]
    """CPU microseconds per request, by process role."""


@dataclass(frozen=True)
class Setup:
    url: str
    roots: list[int]
    """The processes whose CPU time counts for this setup."""
    body: str = BODY
    gzip: bool = False
    """The client accepts gzip (hey's default; the other rows ask for identity)."""
    extra: tuple[str, ...] = ()
    """More `-H` arguments for hey."""
    key: str = DEMO_KEY
    """The bearer key the client sends."""
    route: str = "mock"
    """Where Envoy alone sends the call (the gateway sets its own route)."""
    path: str = "/v1/chat/completions"


def load(url: str, connections: int, setup: Setup, *, post: bool = True) -> Figures:
    request = ["-m", "POST", "-T", "application/json", "-d", setup.body] if post else []
    headers = [
        "-H", f"Authorization: Bearer {setup.key}",
        # Envoy alone routes on the header the processor would set; the gateway strips it.
        "-H", f"x-extproc-route: {setup.route}",
        *(argument for header in setup.extra for argument in ("-H", header)),
    ]  # fmt: skip
    if not setup.gzip:
        headers.append("-disable-compression")
    roots = setup.roots
    before = cpu_by_role(roots)
    output = subprocess.run(
        ["hey", "-z", f"{DURATION_SECONDS}s", "-c", str(connections), "-o", "csv",
         *request, *headers, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after = cpu_by_role(roots)
    # One line per request: response-time,DNS+dialup,DNS,request-write,response-delay,
    # response-read,status-code,offset
    rows = [line.split(",") for line in output.splitlines()[1:] if line.count(",") == 7]
    if not rows:
        raise RuntimeError(f"hey completed no request against {url}")
    latencies = sorted(float(row[0]) * 1000 for row in rows)
    return Figures(
        requests_per_second=len(rows) / DURATION_SECONDS,
        p50_ms=_percentile(latencies, 50),
        p90_ms=_percentile(latencies, 90),
        p99_ms=_percentile(latencies, 99),
        errors=sum(1 for row in rows if row[6] != "200"),
        cpu_us={role: (after[role] - before[role]) * 1e6 / len(rows) for role in after},
    )


@dataclass
class StreamFigures:
    first_token_ms: float
    whole_stream_ms: float


def stream_once(client: httpx.Client, url: str, model: str) -> tuple[float, float]:
    """(time to the first content event, time to the end) of one streamed chat, in ms."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {
        "authorization": f"Bearer {DEMO_KEY}",
        "x-extproc-route": LIVE_PROVIDER,
        "accept-encoding": "identity",  # the raw events, as they arrive
    }
    started = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            if first is None and b'"content"' in chunk:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "no content streamed"
    return (first - started) * 1000, (end - started) * 1000


def load_streams(url: str, model: str) -> StreamFigures:
    with httpx.Client(timeout=30) as client:
        stream_once(client, url, model)  # connection set up outside the measurement
        runs = [stream_once(client, url, model) for _ in range(STREAMS_PER_ROUND)]
    return StreamFigures(
        first_token_ms=statistics.median(first for first, _ in runs),
        whole_stream_ms=statistics.median(whole for _, whole in runs),
    )


def _percentile(ordered: list[float], percent: int) -> float:
    """The percentile of times hey rounded to its resolution, read within the step it falls
    in as if that step's times were spread evenly across it (the grouped-data estimate):
    otherwise two setups 0.04 ms apart may read 0.1 ms apart, or none."""
    steps = [round(value / HEY_RESOLUTION_MS) for value in ordered]
    rank = len(steps) * percent / 100
    step = steps[min(len(steps) - 1, int(rank))]
    below, through = bisect_left(steps, step), bisect_right(steps, step)
    return (step - 0.5 + (rank - below) / (through - below)) * HEY_RESOLUTION_MS


def median(runs: list[Figures]) -> Figures:
    return Figures(
        requests_per_second=statistics.median(run.requests_per_second for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p90_ms=statistics.median(run.p90_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        errors=sum(run.errors for run in runs),
        cpu_us={
            role: statistics.median(run.cpu_us[role] for run in runs) for role in runs[0].cpu_us
        },
    )


LIMITS = [
    {"requests": 10**9, "per": "1m"},
    {"tokens": 10**12, "per": "1h"},
    {"usd": 10**6, "per": "month"},
    {"concurrent": 10**6},
]
"""Never reached: every request pays for four counters without ever being refused."""
PRICES = {"input_per_million": 2.5, "output_per_million": 10}


LIVE_PROVIDER = "mock-live"
GUARDRAILS = {
    "built-in": {
        "detectors": [
            "email",
            "phone",
            "credit_card",
            "iban",
            "us_ssn",
            "ip_address",
            "credentials",
        ],
        "input": "mask",
        "output": "mask",
    }
}
"""Every built-in detector on the request and on the answer (JSON and streams)."""


def configure(
    upstream_url: str,
    mock_url: str,
    directory: Path,
    name: str,
    *,
    store: str | None = None,
    collector: str | None = None,
    sampling: float = 1.0,
    envoy_spans: bool = False,
    access_log: Path | None = None,
    jwks: Path | None = None,
    guarded: bool = False,
    mcp_url: str | None = None,
    ledger: Path | None = None,
) -> Path:
    """The demo configuration: its OpenAI-kind provider is the static upstream, the others
    the mock, and `gpt-4o-live` an alias on the mock as OpenAI; with `store`, the demo key gets
    LIMITS there; with `collector`, requests are traced (by the processor, and by Envoy too
    with `envoy_spans`) to that OTLP endpoint, `sampling` of them; with `access_log`, a line per
    request goes to that file; with `jwks`, callers are also known by tokens that Envoy verifies
    against it; `guarded`: every call is screened by GUARDRAILS, both ways; `mcp_url`: the MCP
    server `docs`, every tool of it granted; `ledger`: every settled call recorded in a spend
    ledger there (SQLite)."""
    document = yaml.safe_load((ROOT / "examples" / "gateway.yaml").read_text())
    providers = document["providers"]
    providers[LIVE_PROVIDER] = dict(providers["mock"])
    for provider in providers.values():
        provider["base_url"] = mock_url
        provider["api_key"] = "${file:%s}" % (ROOT / "examples/secrets/mock-provider-key")
    providers["mock"]["base_url"] = upstream_url
    document["models"]["gpt-4o-live"] = {"provider": LIVE_PROVIDER, "model": "gpt-4o"}
    for key in document["keys"]:
        key.pop("limits", None)
        key["models"] = ["*"]
        if store is not None:
            key["limits"] = LIMITS
    document.pop("teams", None)
    document.pop("spend", None)  # the demo's ledger: only the ledger row records calls
    document.pop("telemetry", None)  # several gateways share the machine: no fixed ports
    if store is not None:
        document["prices"] = {alias: PRICES for alias in document["models"]}
        document["quota"] = {"store": store}
    tracing = {
        "enabled": True,
        "endpoint": collector,
        "sampling": sampling,
        "envoy_spans": envoy_spans,
    }
    document["telemetry"] = {
        "access_log": "off" if access_log is None else str(access_log),
        **({"tracing": tracing} if collector is not None else {}),
    }
    if jwks is not None:
        issuer = {"issuer": JWT_ISSUER, "audiences": [JWT_AUDIENCE], "jwks_file": str(jwks)}
        rule = {"name": "users", "jwt": {"issuer": "corp"}, "principal": "user:{sub}"}
        document["identity"] = {"jwt": {"corp": issuer}, "rules": [rule | {"models": ["*"]}]}
    if mcp_url is not None:
        document["mcp_servers"] = {"docs": {"url": mcp_url}}
        for key in document["keys"]:
            key["mcp"] = {"docs": ["*"]}
    if ledger is not None:
        journal = str(ledger.with_suffix(".journal"))
        document["spend"] = {"ledger": {"store": f"sqlite:{ledger}", "journal": journal}}
    if guarded:
        document["guardrails"] = GUARDRAILS
        for key in document["keys"]:
            key["guardrails"] = list(GUARDRAILS)
    path = directory / f"{name}.yaml"
    path.write_text(gateway_yaml(document))
    return path


def production_profile(
    upstream_url: str, mock_url: str, directory: Path, redis_url: str, collector: str
) -> Path:
    """The production profile: LIMITS on Redis, every call traced (by the processor, as
    configured by default) to `collector`, a line per request in an access log."""
    return configure(
        upstream_url,
        mock_url,
        directory,
        "production",
        store=redis_url,
        collector=collector,
        access_log=directory / "production-access.log",
    )


def admin_url(directory: Path) -> str:
    return "http://" + (directory / "envoy-only-admin").read_text().strip() + "/ready"


def main() -> int:
    runs: dict[tuple[str, int], list[Figures]] = {}
    paired: dict[tuple[str, int], list[Figures]] = {}
    """Each targeted row's baseline, loaded just before it in each round."""
    streams: dict[str, list[StreamFigures]] = {}
    with (
        tempfile.TemporaryDirectory() as workdir,
        mock_provider() as mock,
        redis_server() as redis,
        otlp_receiver(keep=False) as (collector, _),
        static_upstream(Path(workdir)) as (upstream, upstream_url),
        mcp_server(json_response=True, stateless=True) as tools,
    ):
        directory = Path(workdir)
        urls = (upstream_url, mock.url, directory)
        config = configure(*urls, "plain", mcp_url=tools.url)
        memory = configure(*urls, "memory", store="memory")
        shared = configure(*urls, "redis", store=redis.url)
        traced = configure(*urls, "traced", collector=collector)
        sampled = configure(*urls, "sampled", collector=collector, sampling=0.1)
        envoy_traced = configure(*urls, "envoy-traced", collector=collector, envoy_spans=True)
        production = production_profile(*urls, redis.url, collector)
        signer = Signer(JWT_ISSUER, JWT_AUDIENCE)
        jwks = signer.write_jwks(directory / "jwks.json")
        verified = configure(*urls, "jwt", jwks=jwks)
        guarded = configure(*urls, "guarded", guarded=True)
        recorded = configure(*urls, "ledger", ledger=directory / "spend.db")
        token = signer.token(lifetime=86400, sub="bench-user")
        mock_pid = mock.process.popen.pid
        upstream_pid = upstream.popen.pid
        with (
            envoy_only(config, directory, processor=None) as (alone, alone_url),
            running_gateway(config, directory / "gateway.log") as gateway,
            running_gateway(memory, directory / "memory.log") as with_memory,
            running_gateway(shared, directory / "redis.log") as with_redis,
            running_gateway(traced, directory / "traced.log") as with_tracing,
            running_gateway(verified, directory / "jwt.log") as with_jwt,
            running_gateway(sampled, directory / "sampled.log") as with_sampling,
            running_gateway(envoy_traced, directory / "envoy-traced.log") as with_envoy_tracing,
            running_gateway(production, directory / "production.log") as in_production,
            running_gateway(guarded, directory / "guarded.log") as with_guardrails,
            running_gateway(recorded, directory / "ledger.log") as with_ledger,
        ):
            plain = [gateway.process.popen.pid, upstream_pid]
            on_mock = [gateway.process.popen.pid, mock_pid]
            targets = {
                "envoy alone": Setup(alone_url, [alone.popen.pid, upstream_pid]),
                "gateway": Setup(gateway.url, plain),
                "gateway, mock": Setup(gateway.url, on_mock, body=LIVE_BODY),
                "+translation": Setup(gateway.url, on_mock, body=TRANSLATED_BODY),
                "+fallback": Setup(gateway.url, plain, body=FALLBACK_BODY),
                "+gzip client": Setup(gateway.url, plain, gzip=True),
                "+gzip provider": Setup(
                    gateway.url, on_mock, body=LIVE_BODY, extra=("x-mock-force-gzip: 1",)
                ),
                "+quota mem": Setup(with_memory.url, [with_memory.process.popen.pid, upstream_pid]),
                "+quota redis": Setup(
                    with_redis.url,
                    [with_redis.process.popen.pid, upstream_pid, redis.process.popen.pid],
                ),
                "+tracing": Setup(with_tracing.url, [with_tracing.process.popen.pid, upstream_pid]),
                "+tracing, envoy": Setup(
                    with_envoy_tracing.url, [with_envoy_tracing.process.popen.pid, upstream_pid]
                ),
                "+tracing 0.1": Setup(
                    with_sampling.url, [with_sampling.process.popen.pid, upstream_pid]
                ),
                "production": Setup(
                    in_production.url,
                    [in_production.process.popen.pid, upstream_pid, redis.process.popen.pid],
                ),
                "jwt, not key": Setup(
                    with_jwt.url, [with_jwt.process.popen.pid, upstream_pid], key=token
                ),
                "+guardrails": Setup(
                    with_guardrails.url, [with_guardrails.process.popen.pid, upstream_pid]
                ),
                "+spend ledger": Setup(
                    with_ledger.url, [with_ledger.process.popen.pid, upstream_pid]
                ),
                # A tool call to an MCP server (in this process: its CPU is not counted).
                "mcp alone": Setup(
                    alone_url,
                    [alone.popen.pid],
                    body=TOOL_CALL,
                    route="mcp:docs",
                    path="/mcp",
                    extra=MCP_HEADERS,
                ),
                "mcp gateway": Setup(
                    gateway.url,
                    [gateway.process.popen.pid],
                    body=TOOL_CALL,
                    path="/mcp/docs",
                    extra=MCP_HEADERS,
                ),
            }
            control_setup = Setup(admin_url(directory), [alone.popen.pid])
            for _ in range(ROUNDS):
                control = load(control_setup.url, 1, control_setup, post=False)
                runs.setdefault(("control", 1), []).append(control)
                for connections in CONNECTIONS:
                    for name, setup in targets.items():
                        if paired_at(name, connections):
                            baseline = targets[ADDED[name][0]]
                            before = load(baseline.url + baseline.path, connections, baseline)
                            paired.setdefault((name, connections), []).append(before)
                        figures = load(setup.url + setup.path, connections, setup)
                        runs.setdefault((name, connections), []).append(figures)
                for name, url, model in (
                    ("envoy alone", alone_url, "gpt-4o-live"),
                    ("gateway", gateway.url, "gpt-4o-live"),
                    ("translated", gateway.url, "claude-sonnet"),
                    ("guardrails", with_guardrails.url, "gpt-4o-live"),
                ):
                    result = load_streams(url + "/v1/chat/completions", model)
                    streams.setdefault(name, []).append(result)
    results = {key: median(value) for key, value in runs.items()}
    report(results, beside_baselines(runs, paired))
    report_streams(streams)
    return 0


def report_streams(streams: dict[str, list[StreamFigures]]) -> None:
    print(
        f"\nstreaming (13 events, no pacing), medians of {ROUNDS} rounds of "
        f"{STREAMS_PER_ROUND} sequential streams:"
    )
    medians = {}
    for name, rounds in streams.items():
        first = statistics.median(r.first_token_ms for r in rounds)
        whole = statistics.median(r.whole_stream_ms for r in rounds)
        medians[name] = first
        print(f"  {name:<13} first token {first:6.2f} ms   whole stream {whole:6.2f} ms")
    alone = medians["envoy alone"]
    print(f"  target: first token <= 1.5 x Envoy alone's + 0.5 ms = {1.5 * alone + 0.5:.2f} ms")
    for name in ("gateway", "translated", "guardrails"):
        added = medians[name] - alone
        print(
            f"  added time to first token, {name}: +{added:.2f} ms ({medians[name] / alone:.2f}x)"
        )


ADDED: dict[str, tuple[str, float | None]] = {
    "+translation": ("gateway, mock", None),
    "+gzip provider": ("gateway, mock", None),
    "+fallback": ("gateway", 0.85),
    "+gzip client": ("gateway", None),
    "+quota mem": ("gateway", None),
    "+quota redis": ("gateway", 0.8),
    "+tracing": ("gateway", 0.85),
    "+tracing, envoy": ("gateway", None),
    "+tracing 0.1": ("gateway", 0.95),
    "production": ("gateway", 0.65),
    "jwt, not key": ("gateway", 0.95),
    "+guardrails": ("gateway", None),
    "+spend ledger": ("gateway", 0.95),
    "mcp gateway": ("mcp alone", None),
}
"""Each added feature's row: the row it adds to, and the throughput it should keep."""
ADDED_P50_MS = {"production": 0.5, "+fallback": 0.3}
"""The rows whose added p50 at one connection has a target (milliseconds)."""


def paired_at(name: str, connections: int) -> bool:
    """Whether the row is also compared with its baseline loaded just before it."""
    if connections == PAIRED_CONNECTIONS:
        return ADDED.get(name, ("", None))[1] is not None
    return connections == 1 and name in ADDED_P50_MS


def beside_baselines(
    runs: dict[tuple[str, int], list[Figures]], paired: dict[tuple[str, int], list[Figures]]
) -> dict[tuple[str, int], float]:
    """Each targeted row against its baseline loaded just before it, the median of the
    rounds' comparisons (req/s ratio at 32 connections, p50 added at one): a machine whose
    speed drifts within a round (another tenant's load) moves a row and the baseline up to a
    minute before it apart, not a row and the one next to it."""
    beside = {}
    for (name, connections), bases in paired.items():
        rows = zip(runs[name, connections], bases, strict=True)
        beside[name, connections] = statistics.median(
            row.requests_per_second / base.requests_per_second
            if connections == PAIRED_CONNECTIONS
            else row.p50_ms - base.p50_ms
            for row, base in rows
        )
    return beside


def report(results: dict[tuple[str, int], Figures], beside: dict[tuple[str, int], float]) -> None:
    print(
        f"\nmedians of {ROUNDS} rounds of {DURATION_SECONDS}s each (hey); "
        "control = Envoy admin /ready"
    )
    columns = ("conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors")
    print(f"{'setup':<14} " + " ".join(f"{column:>8}" for column in columns))
    for (name, connections), figures in sorted(results.items(), key=lambda item: item[0][1]):
        print(
            f"{name:<14} {connections:>8} {figures.requests_per_second:>8.0f} "
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
        " [>= 0.25x]"
    )
    print(f"  p99 latency @32 conns  {gw32.p99_ms / alone32.p99_ms:5.2f}x")
    print("\nadded features / the gateway without them (same run; target in brackets):")
    for name, (baseline, target) in ADDED.items():
        base1, base32 = results[baseline, 1], results[baseline, 32]
        row1, row32 = results[name, 1], results[name, 32]
        ratio = row32.requests_per_second / base32.requests_per_second
        aim = f"[>= {target:.2f}x]" if target else ""
        ratio_near = beside.get((name, PAIRED_CONNECTIONS))
        near = f" (beside it: {ratio_near:4.2f}x)" if ratio_near is not None else ""
        added_near = beside.get((name, 1))
        near_p50 = f" (beside it: {added_near:+.2f} ms)" if added_near is not None else ""
        aim_p50 = f" [<= +{ADDED_P50_MS[name]:.2f} ms]" if name in ADDED_P50_MS else ""
        print(
            f"  {name:<14} p50 @1 conn {row1.p50_ms - base1.p50_ms:+.2f} ms"
            f"  ({row1.p50_ms / base1.p50_ms:4.2f}x){near_p50}{aim_p50}"
            f"   req/s @32 conns {ratio:4.2f}x{near} {aim}"
        )
    envoy_cpu = results["envoy alone", 32].cpu_us["envoy"]
    print("\nCPU microseconds per request @32 conns (from /proc; stalls do not count):")
    for name in ("envoy alone", "gateway", "gateway, mock", "mcp alone", *ADDED):
        figures = results[name, 32]
        roles = [role for role in ROLES if role != "peer"]  # peers run in bench-peers only
        parts = "  ".join(f"{role} {figures.cpu_us[role]:5.0f}" for role in roles)
        print(f"  {name:<14} {parts}   total {sum(figures.cpu_us.values()):6.0f}")
    processor = results["gateway", 32].cpu_us["processor"]
    print(
        f"  processor per plain call / Envoy alone per call: {processor / envoy_cpu:.2f}x"
        " [<= 2.00x]"
    )


if __name__ == "__main__":
    raise SystemExit(main())
