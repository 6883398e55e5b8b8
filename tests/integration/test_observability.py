"""Traces from Envoy (`envoy_spans: true`) and the processor in one trace, GenAI metrics, and
the access log."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import ALL_SECRETS, GATEWAY_KEY, OPENAI_KEY
from tests.harness import (
    HTTP,
    MockProvider,
    RunningGateway,
    free_port,
    running_gateway,
    sample,
    sha256,
    wait_until,
    write_config,
)
from tests.mcp_server import RunningMcpServer, mcp_server
from tests.otlp_receiver import Received

pytestmark = pytest.mark.envoy

LIMITED = "sk-gw-observed-limited-0123456789"
GUARDED = "sk-gw-observed-guarded-0123456789"
PERSONAL = "jane.doe@example.com"
EXPIRING = "sk-gw-observed-expiring-0123456789"
"""A key three days from its expiry: inside the default week of notice."""
METRICS_PORT = free_port()
DASHBOARD = (
    Path(__file__).resolve().parents[2] / "manifests/overlays/observability/grafana-dashboard.json"
)
ENVOY_SERVICE = "extproc-gateway-envoy"
WRONG_KEY = "sk-gw-not-a-real-key-0123456789"
THROTTLED = "gpt-4o-throttled"
"""The first target of the `backed` alias, which the traffic's fallback call finds throttled."""


@pytest.fixture(scope="module")
def tools() -> Iterator[RunningMcpServer]:
    with mcp_server(json_response=True, stateless=True) as server:
        yield server


@pytest.fixture(scope="module")
def config(
    mock: MockProvider,
    receiver: tuple[str, Received],
    tools: RunningMcpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    directory = tmp_path_factory.mktemp("observability")
    (directory / "openai").write_text(OPENAI_KEY)
    endpoint, _ = receiver
    return write_config(
        directory,
        {
            "processor": {"message_timeout": "10s"},
            "providers": {
                "openai": {"kind": "openai", "base_url": mock.url, "api_key": "${file:openai}"}
            },
            "models": {
                "chat": {"provider": "openai", "model": "gpt-4o-mini"},
                "backed": {
                    "targets": [
                        {"provider": "openai", "model": THROTTLED},
                        {"provider": "openai", "model": "gpt-4o-mini", "priority": 1},
                    ]
                },
            },
            "prices": {"chat": {"input_per_million": 1, "output_per_million": 2}},
            "keys": [
                {"id": "full", "sha256": sha256(GATEWAY_KEY), "team": "core", "models": ["*"]},
                {
                    "id": "limited",
                    "sha256": sha256(LIMITED),
                    "models": ["*"],
                    "limits": [{"requests": 1, "per": "1d"}],
                },
                {
                    "id": "guarded",
                    "sha256": sha256(GUARDED),
                    "models": ["*"],
                    "guardrails": ["pii"],
                    "mcp": {"docs": ["search"]},
                },
                {
                    "id": "expiring",
                    "sha256": sha256(EXPIRING),
                    "models": ["*"],
                    "expires_at": datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3),
                },
            ],
            "guardrails": {"pii": {"detectors": ["email"], "input": "mask", "output": "log"}},
            "mcp_servers": {"docs": {"url": tools.url}},
            "spend": {"ledger": {"store": f"sqlite:{directory / 'spend.db'}"}},
            "telemetry": {
                "tracing": {
                    "enabled": True,
                    "endpoint": endpoint,
                    "envoy_spans": True,
                    "record_content": True,
                    "redact": [r"card-\d+"],
                },
                "metrics": {"prometheus_port": METRICS_PORT, "otlp": True, "export_interval": "1s"},
                "access_log": str(directory / "access.log"),
            },
        },
    )


@pytest.fixture(scope="module")
def gateway(config: Path) -> Iterator[RunningGateway]:
    with running_gateway(config, config.parent / "gateway.log") as running:
        yield running


@pytest.fixture(scope="module")
def traffic(gateway: RunningGateway) -> dict[str, Any]:
    """A scripted mix: two chats, a stream, a call that falls back, a refusal, a bad key;
    returns what was served."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as sdk:
        answers = [
            sdk.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Pay with card-4242"}]
            )
            for _ in range(2)
        ]
        answers.append(
            sdk.chat.completions.create(
                model="backed",
                messages=[{"role": "user", "content": "Hi"}],
                extra_headers={"x-mock-fail": f"{THROTTLED}=429/30"},
            )
        )
        list(
            sdk.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        )
    limited = {"authorization": f"Bearer {LIMITED}"}
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    statuses = [
        HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=limited).status_code
        for _ in range(2)
    ]
    bad = HTTP.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {WRONG_KEY}"})
    expiring = HTTP.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {EXPIRING}"},
    )
    guarded = HTTP.post(
        gateway.url + "/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": f"Mail {PERSONAL}"}]},
        headers={"authorization": f"Bearer {GUARDED}", "x-mock-text": f'["Wrote {PERSONAL}"]'},
    )
    assert statuses == [200, 429] and bad.status_code == 401
    assert "x-extproc-key-expires-at" in expiring.headers
    assert guarded.json()["choices"][0]["message"]["content"] == f"Wrote {PERSONAL}"
    tool_call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "card-4242"}},
    }
    searched = HTTP.post(
        gateway.url + "/mcp/docs",
        json=tool_call,
        headers={
            "authorization": f"Bearer {GUARDED}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2025-06-18",
        },
    )
    assert searched.json()["result"]["content"][0]["text"] == "3 documents about card-4242"
    return {"answers": answers}


def wait_for_spans(received: Received, count: int) -> list[dict[str, Any]]:
    """The spans received once `count` chat spans and each one's parent have arrived (Envoy
    and the processor export on their own schedules)."""

    def complete() -> list[dict[str, Any]] | None:
        with received.lock:
            spans = list(received.spans)
        ids = {span["span_id"] for span in spans}
        chats = [span for span in spans if span["name"].startswith("chat ")]
        if len(chats) >= count and all(chat["parent_id"] in ids for chat in chats):
            return spans
        return None

    return wait_until(complete, f"{count} chat spans with their parents never arrived")


def metrics_text() -> str:
    return httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics").text


def test_one_trace_spans_envoy_and_the_processor(
    traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    _, received = receiver
    spans = wait_for_spans(received, 4)
    chats = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert len(chats) >= 3, [s["name"] for s in spans]
    envoy_spans = {s["span_id"]: s for s in spans if s["service"] == ENVOY_SERVICE}
    for chat in chats:
        assert chat["service"] == "extproc-gateway"
        parent = envoy_spans.get(chat["parent_id"])
        assert parent is not None, "the processor's span must hang under Envoy's"
        assert "ExternalProcessor" in parent["name"]
        assert parent["trace_id"] == chat["trace_id"]
        ingress = [s for s in envoy_spans.values() if s["trace_id"] == chat["trace_id"]]
        assert len(ingress) >= 2, "Envoy's request span and its ext_proc span share the trace"
    first = chats[0]["attributes"]
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "openai"
    assert first["gen_ai.request.model"] == "gpt-4o-mini"
    assert first["gen_ai.response.model"] == "gpt-4o-mini"
    assert first["gen_ai.usage.input_tokens"] == traffic["answers"][0].usage.prompt_tokens
    assert first["gen_ai.usage.output_tokens"] == traffic["answers"][0].usage.completion_tokens
    assert first["extproc.key.id"] == "full" and first["extproc.team"] == "core"
    assert first["extproc.model.alias"] == "chat"
    assert first["extproc.target"] == "openai/gpt-4o-mini"
    assert first["extproc.quota.decision"] == "unmetered"

    # A step is timed where there is one: the limited key's calls reserve, the others do not.
    def reservations() -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
        """Each reservation's span with its parent, once some have arrived with theirs."""
        with received.lock:
            by_id = {s["span_id"]: s for s in received.spans}
        found = [s for s in by_id.values() if s["name"] == "gateway.quota.reserve"]
        if found and all(s["parent_id"] in by_id for s in found):
            return [(s, by_id[s["parent_id"]]) for s in found]
        return None

    for _, request in wait_until(reservations, "no reservation span with its parent"):
        assert request["attributes"]["extproc.key.id"] == "limited"
    # Content is recorded here (enabled), with the redaction applied.
    assert "[REDACTED]" in first["gen_ai.input.messages"]
    assert "card-4242" not in first["gen_ai.input.messages"]
    assert first["gen_ai.output.messages"].startswith("Hello from the mock provider")

    def refused() -> list[dict[str, Any]] | None:
        """The refused call's span, once it has arrived (its own export may come later)."""
        with received.lock:
            found = [
                s
                for s in received.spans
                if s["attributes"].get("http.response.status_code") == 429
                and s["name"] != "gateway.attempt"
            ]
        return found or None

    (span, *_) = wait_until(refused, "the refused call's span never arrived")
    assert span["attributes"]["error.type"] == "rate_limit_exceeded"


def test_each_attempt_has_its_span_under_the_request_span(
    traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    _, received = receiver

    def attempts() -> list[dict[str, Any]] | None:
        with received.lock:
            found = [s for s in received.spans if s["name"] == "gateway.attempt"]
        return found if len(found) >= 2 else None

    first, second = sorted(
        wait_until(attempts, "two attempt spans never arrived"),
        key=lambda span: span["attributes"]["extproc.attempt.number"],
    )
    with received.lock:
        by_id = {span["span_id"]: span for span in received.spans}
    request = by_id[first["parent_id"]]
    assert second["parent_id"] == request["span_id"], "both attempts under one request span"
    assert request["service"] == first["service"] == "extproc-gateway"
    assert request["attributes"]["extproc.model.alias"] == "backed"
    assert request["attributes"]["extproc.target"] == "openai/gpt-4o-mini", "who answered"
    assert {
        k: first["attributes"].get(k)
        for k in (
            "extproc.target",
            "extproc.attempt.outcome",
            "http.response.status_code",
            "gen_ai.request.model",
        )
    } == {
        "extproc.target": f"openai/{THROTTLED}",
        "extproc.attempt.outcome": "429",
        "http.response.status_code": 429,
        "gen_ai.request.model": THROTTLED,
    }
    assert first["error"] and not second["error"]
    assert second["attributes"]["extproc.attempt.outcome"] == "ok"
    assert second["attributes"]["extproc.attempt.number"] == 2
    assert second["attributes"]["gen_ai.provider.name"] == "openai"


def test_metrics_count_tokens_and_refusals(traffic: dict[str, Any]) -> None:
    text = metrics_text()
    answers = traffic["answers"]
    # The stream reports the mock's own counts: its prompt estimate, and 13 words.
    streamed = {"input": len(orjson.dumps([{"role": "user", "content": "Hi"}])) // 4, "output": 13}
    for kind, field in (("input", "prompt_tokens"), ("output", "completion_tokens")):
        expected = sum(getattr(a.usage, field) for a in answers) + streamed[kind]
        assert (
            sample(
                text, "gen_ai_client_token_usage_sum", gen_ai_token_type=kind, extproc_key_id="full"
            )
            == expected
        )
    assert sample(text, "gen_ai_server_request_duration_seconds_count") >= 5
    assert sample(text, "gen_ai_server_time_to_first_token_seconds_count") == 1
    assert sample(text, "extproc_requests_total", http_response_status_code="429") == 1
    assert sample(text, "extproc_requests_total", http_response_status_code="401") == 1
    assert (
        sample(
            text,
            "extproc_quota_refusals_total",
            extproc_quota_scope="key",
            extproc_key_id="limited",
        )
        == 1
    )
    assert sample(text, "extproc_cost_usd_total", extproc_key_id="full") > 0
    assert sample(text, "extproc_attempts_total", extproc_attempt_outcome="429") == 1
    assert sample(text, "extproc_attempts_total", extproc_attempt_outcome="ok") == 1
    assert sample(text, "extproc_cooldowns_total", extproc_target=f"openai/{THROTTLED}") == 1
    assert sample(text, "extproc_fallbacks_total", extproc_model_alias="backed") == 1
    assert sample(text, "extproc_quota_store_pending") == 0  # nothing waits for the store
    assert sample(text, "extproc_key_expiring_uses_total", extproc_key_id="expiring") == 1
    assert sample(text, "extproc_key_expiring_uses_total") == 1
    decisions = {"extproc_guardrail_policy": "pii", "extproc_guardrail_detector": "email"}
    for direction, action in (("input", "mask"), ("output", "log")):
        labels = decisions | {
            "extproc_guardrail_direction": direction,
            "extproc_guardrail_action": action,
        }
        assert sample(text, "extproc_guardrail_decisions_total", **labels) == 1


def test_metrics_also_go_out_over_otlp(
    traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    _, received = receiver
    wait_until(
        lambda: "gen_ai.client.token.usage" in received.metric_names, "no token metric over OTLP"
    )
    assert {"gen_ai.server.request.duration", "extproc.requests"} <= received.metric_names


def test_guardrail_decisions_are_on_the_span_without_the_matched_text(
    traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    _, received = receiver
    spans = wait_for_spans(received, 5)
    guarded = [
        s
        for s in spans
        if s["attributes"].get("extproc.key.id") == "guarded" and s["name"].startswith("chat ")
    ]
    assert len(guarded) == 1
    attributes = guarded[0]["attributes"]
    decisions = attributes["extproc.guardrail.decisions"]  # an OTLP array value
    assert [value.string_value for value in decisions.values] == [
        "input:pii/email:mask",
        "output:pii/email:log",
    ]
    assert PERSONAL not in attributes["gen_ai.input.messages"]
    assert "[EMAIL]" in attributes["gen_ai.input.messages"]


def test_a_tool_call_has_its_span_and_metric_with_arguments_redacted(
    traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    _, received = receiver

    def tool_span() -> dict[str, Any] | None:
        with received.lock:
            return next((s for s in received.spans if s["name"] == "tools/call search"), None)

    attributes = wait_until(tool_span, "no span for the tool call")["attributes"]
    assert attributes["gen_ai.tool.name"] == "search"
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["extproc.mcp.server"] == "docs"
    assert attributes["extproc.mcp.outcome"] == "ok"
    assert attributes["gen_ai.input.messages"] == '[{"query":"[REDACTED]"}]'
    assert "[REDACTED]" in attributes["gen_ai.output.messages"]
    assert "card-4242" not in attributes["gen_ai.output.messages"]
    labels = {"extproc_mcp_server": "docs", "gen_ai_tool_name": "search"}
    assert sample(metrics_text(), "extproc_mcp_calls_total", **labels) == 1


def test_the_access_log_has_one_line_per_request(traffic: dict[str, Any], config: Path) -> None:
    lines = [orjson.loads(line) for line in (config.parent / "access.log").read_text().splitlines()]
    assert len(lines) == 10
    first = lines[0]
    assert first["key_id"] == "full" and first["team"] == "core" and first["alias"] == "chat"
    assert first["provider"] == "openai" and first["model"] == "gpt-4o-mini"
    assert first["status"] == 200 and first["request_id"]
    assert first["input_tokens"] == traffic["answers"][0].usage.prompt_tokens
    assert first["cost_usd"] > 0 and first["latency_ms"] > 0
    backed = lines[2]
    assert (backed["alias"], backed["model"], backed["attempts"]) == ("backed", "gpt-4o-mini", 2)
    assert lines[3]["stream"] is True and lines[3]["ttft_ms"] > 0
    assert [line["status"] for line in lines[4:]] == [200, 429, 401, 200, 200, 200]
    assert lines[5]["error_type"] == "rate_limit_exceeded"
    assert lines[7]["key_id"] == "expiring"
    assert lines[8]["guardrails"] == ["input:pii/email:mask", "output:pii/email:log"]
    assert (lines[9]["mcp_server"], lines[9]["mcp_tool"], lines[9]["mcp_outcome"]) == (
        "docs",
        "search",
        "ok",
    )


def test_healthy_requests_leave_the_gateway_log_quiet(
    traffic: dict[str, Any], gateway: RunningGateway
) -> None:
    """Requests are the access log's business: nothing else writes a line per request."""
    chatter = [line for line in gateway.log_path.read_text().splitlines() if " INFO " in line]
    assert all(" INFO extproc." in line for line in chatter), chatter
    assert len(chatter) < 4, chatter  # start-up lines only


def test_no_key_appears_in_any_exported_byte(
    traffic: dict[str, Any], receiver: tuple[str, Received], gateway: RunningGateway, config: Path
) -> None:
    _, received = receiver
    wait_for_spans(received, 4)
    with received.lock:
        exported = b"".join(received.raw)
    everything = [
        exported,
        metrics_text().encode(),
        (config.parent / "access.log").read_bytes(),
        gateway.log_path.read_bytes(),
    ]
    for secret in (*ALL_SECRETS, LIMITED, EXPIRING, WRONG_KEY):
        for blob in everything:
            assert secret.encode() not in blob


def test_every_dashboard_query_names_an_exported_metric(traffic: dict[str, Any]) -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in metrics_text().splitlines()
        if line and not line.startswith("#")
    }
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(queries) >= 10
    for query in queries:
        # Label names appear in matchers and by (...) clauses; metric names everywhere else.
        bare = re.sub(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)", "", query)
        names = set(re.findall(r"\b((?:gen_ai|extproc)_[a-z_]+)\b", bare))
        assert names, query
        assert names <= exported, (query, names - exported)


def test_envoy_sends_its_spans_in_batches(
    gateway: RunningGateway, traffic: dict[str, Any], receiver: tuple[str, Received]
) -> None:
    """Envoy's tracer would make one export call per 5 spans, costing more than the spans.
    (Last in the module: its traffic would change the counts the tests above check.)"""
    _, received = receiver
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    for _ in range(30):
        assert HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)

    def envoy_batches() -> list[int] | None:
        with received.lock:
            sizes = [n for service, n in received.span_exports if service == ENVOY_SERVICE]
        return sizes if sum(sizes) >= 60 else None

    sizes = wait_until(envoy_batches, "Envoy's spans of 30 requests never arrived")
    assert max(sizes) > 5, sizes
