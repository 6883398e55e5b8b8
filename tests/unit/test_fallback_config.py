"""Fallback chains in the configuration: priorities on targets, retry settings per alias."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extproc.config import ConfigError, parse_gateway
from extproc.envoyconfig.bootstrap import build_bootstrap, render
from extproc.envoyconfig.placement import placement_of
from tests.harness import envoy_validates

BASE = """
providers:
  a: {kind: openai, base_url: "http://127.0.0.1:1", timeout: 20s}
  b: {kind: anthropic, base_url: "http://127.0.0.1:2", timeout: 45s}
"""


def compile_models(models: str, routing: str = ""):  # type: ignore[no-untyped-def]
    return parse_gateway(BASE + models + routing, source=Path("f.yaml"), environ={}).models


def test_a_single_priority_without_retry_settings_makes_one_attempt() -> None:
    models = compile_models("models:\n  m: {provider: a, model: x}\n")
    assert models["m"].retry is None


def test_each_priority_level_is_tried_once_on_every_outcome_by_default() -> None:
    models = compile_models(
        "models:\n  m:\n    targets:\n"
        "      - {provider: a, model: x, priority: 0}\n"
        "      - {provider: a, model: y, priority: 0}\n"
        "      - {provider: b, model: z, priority: 1}\n"
    )
    retry = models["m"].retry
    assert retry is not None
    assert models["m"].priorities == (0, 1)
    assert retry.attempts == 2
    assert retry.on == ("connect-failure", "reset", "timeout", "429", "5xx")
    assert retry.per_attempt_timeout == 45.0, "the slowest target's provider timeout"


def test_an_aliases_retry_block_overrides_the_routing_default_field_by_field() -> None:
    models = compile_models(
        "models:\n"
        "  plain: {provider: a, model: x}\n"
        "  tuned: {provider: a, model: x, retry: {attempts: 4, retry_on: [429]}}\n",
        "routing: {retry: {per_attempt_timeout: 5s, retry_on: [5xx, reset]}}\n",
    )
    plain, tuned = models["plain"].retry, models["tuned"].retry
    assert plain is not None and tuned is not None
    assert (plain.attempts, plain.on, plain.per_attempt_timeout) == (1, ("5xx", "reset"), 5.0)
    assert (tuned.attempts, tuned.on, tuned.per_attempt_timeout) == (4, ("429",), 5.0)


@pytest.mark.parametrize(
    ("retry", "path"),
    [
        ("{retry_on: [4xx]}", "models.m.retry.retry_on.0"),
        ("{attempts: 0}", "models.m.retry.attempts"),
        ("{backoff: {base: 2s, max: 1s}}", "models.m.retry.backoff"),
    ],
)
def test_bad_retry_settings_are_refused_with_their_path(retry: str, path: str) -> None:
    with pytest.raises(ConfigError) as refused:
        compile_models(f"models:\n  m: {{provider: a, model: x, retry: {retry}}}\n")
    assert any(where == path for where, _ in refused.value.problems), refused.value.problems


PRICED = """
models:
  m:
    targets:
      - {provider: a, model: x, price: {input_per_million: 5, output_per_million: 8}}
      - {provider: b, model: z, priority: 1%s}
keys:
  - {id: k, sha256: "%s", models: [m], limits: [{usd: 1, per: 1d}]}
"""


def test_a_target_may_carry_its_own_price_and_calls_reserve_the_highest() -> None:
    b_price = ", price: {input_per_million: 3, output_per_million: 15, cached_input_per_million: 1}"
    route = compile_models(PRICED % (b_price, "0" * 64))["m"]
    first, second = (target.price for target in route.targets)
    assert first is not None and second is not None
    assert (first.input_per_million, second.output_per_million) == (5, 15)
    highest = route.price
    assert highest is not None
    assert (highest.input_per_million, highest.output_per_million) == (5, 15)
    assert highest.cached_input == 5, "x's unset cached price is its input price"


def test_a_usd_limit_needs_a_price_for_every_target_of_its_models() -> None:
    with pytest.raises(ConfigError) as refused:
        compile_models(PRICED % ("", "0" * 64))
    assert refused.value.problems == [
        ("keys.0.limits.0.usd", "no price for m in prices (or on its targets)")
    ]


FALLBACK = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com", api_key: "${env:K}"}
  azure: {kind: azure, base_url: "https://x.openai.azure.com/openai", api_version: 2024-10-21}
  claude: {kind: anthropic, base_url: "https://api.anthropic.com"}
  local: {kind: openai, base_url: "http://127.0.0.1:8000"}
models:
  smart:
    targets:
      - {provider: openai, model: gpt-4o, weight: 3}
      - {provider: azure, model: gpt4o-prod, weight: 1}
      - {provider: claude, model: claude-sonnet-4-5, priority: 1}
      - {provider: local, model: llama, priority: 2}
  plain: {provider: openai, model: gpt-4o-mini}
"""


def test_envoy_accepts_a_fallback_alias_and_renders_its_chain(tmp_path: Path) -> None:
    gateway = parse_gateway(FALLBACK, source=tmp_path / "f.yaml", environ={"K": "k"})
    bootstrap = render(build_bootstrap(gateway, placement_of(gateway)))
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(bootstrap))

    result = envoy_validates(config)

    assert result.returncode == 0, result.stderr[-2000:]
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    assert not [name for name in clusters if "plain" in name], "one attempt needs no alias cluster"
    chain = clusters["alias_smart.0"]["load_assignment"]["endpoints"]
    assert [
        (level.get("priority", 0), [e["endpoint"]["hostname"] for e in level["lb_endpoints"]])
        for level in chain
    ] == [
        (0, ["api.openai.com", "x.openai.azure.com"]),
        (1, ["api.anthropic.com"]),
        (2, ["127.0.0.1:8000"]),  # the Host attempts send: port kept when not the default
    ]
    matches = {m["name"] for m in clusters["alias_smart.0"]["transport_socket_matches"]}
    assert matches == {"openai", "azure", "claude"}, "TLS for the https providers only"
    # Starting further down the chain: the levels left are renumbered from 0.
    later = clusters["alias_smart.1"]["load_assignment"]["endpoints"]
    assert [
        (level.get("priority", 0), [e["endpoint"]["hostname"] for e in level["lb_endpoints"]])
        for level in later
    ] == [(0, ["api.anthropic.com"]), (1, ["127.0.0.1:8000"])]
    assert "alias_smart.3" not in clusters
    routes = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    first = routes["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    policy = first["route"]["retry_policy"]
    assert (first["route"]["cluster"], policy["num_retries"]) == ("alias_smart.0", 2)
    assert "api_key" not in config.read_text() and "${env:K}" not in config.read_text()


def test_every_processor_call_fails_closed_alike_on_every_attempt(tmp_path: Path) -> None:
    """The attempts' ext_proc filters answer as the request's own does when the processor is
    slow or down: the configured time for its answer (not Envoy's 200 ms default) and 503."""
    document = FALLBACK + "processor: {message_timeout: 7s}\n"
    gateway = parse_gateway(document, source=tmp_path / "f.yaml", environ={"K": "k"})
    bootstrap = render(build_bootstrap(gateway, placement_of(gateway)))
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = list(manager["typed_config"]["http_filters"])
    for cluster in bootstrap["static_resources"]["clusters"]:
        options = cluster.get("typed_extension_protocol_options", {})
        for protocol in options.values():
            # An attempt's filter is wrapped in the matcher that skips a prepared first one.
            filters += [
                f["typed_config"].get("extension_config", f)
                for f in protocol.get("http_filters", [])
            ]
    ext_procs = [f["typed_config"] for f in filters if f["name"] == "envoy.filters.http.ext_proc"]
    assert len(ext_procs) == 1 + 3, "the request's own, and one per start level of `smart`"
    for ext_proc in ext_procs:
        assert ext_proc["message_timeout"] == "7s"
        assert ext_proc["status_on_error"] == {"code": "ServiceUnavailable"}
        assert ext_proc.get("failure_mode_allow", False) is False
        assert ext_proc["grpc_service"] == ext_procs[0]["grpc_service"]
