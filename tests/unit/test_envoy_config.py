"""The rendered Envoy bootstrap: accepted by the real Envoy, fail-closed, TLS-verified, fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.cli import main
from extproc.config import load_gateway
from extproc.config.loader import compile_tracing
from extproc.config.schema import TracingSpec
from extproc.envoyconfig.bootstrap import build_bootstrap, render
from extproc.envoyconfig.placement import placement_of
from extproc.envoyconfig.tracing import collector_endpoint
from tests.harness import envoy_validates

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def rendered(example: Path) -> dict[str, Any]:
    gateway = load_gateway(example, resolve_secrets=False)
    return render(build_bootstrap(gateway, placement_of(gateway)))


def http_filters(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return manager["typed_config"]["http_filters"]  # type: ignore[no-any-return]


def filter_config(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f["typed_config"] for f in http_filters(bootstrap) if f["name"] == name)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_envoy_accepts_every_rendered_example(example: Path, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(rendered(example)))

    result = envoy_validates(config)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK" in result.stdout + result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_committed_rendering_is_fresh(example: Path) -> None:
    committed = yaml.safe_load((ROOT / "envoy" / example.name).read_text())
    assert committed == rendered(example), "run `make envoy-examples`"


def test_ext_proc_fails_closed_with_a_body_limit_for_long_prompts() -> None:
    bootstrap = rendered(ROOT / "examples" / "gateway.yaml")
    ext_proc = filter_config(bootstrap, "envoy.filters.http.ext_proc")

    assert ext_proc.get("failure_mode_allow", False) is False
    assert ext_proc["status_on_error"]["code"] == "ServiceUnavailable"
    assert ext_proc["processing_mode"]["request_body_mode"] == "BUFFERED"
    listener = bootstrap["static_resources"]["listeners"][0]
    assert listener["per_connection_buffer_limit_bytes"] >= 1024 * 1024


def test_bodies_are_inflated_before_the_processor_and_compressed_after_it() -> None:
    filters = http_filters(rendered(ROOT / "examples" / "gateway.yaml"))

    # Requests run down this list, responses up it: the processor reads plain request
    # bodies, and clients get answers compressed when they accept it.
    assert [item["name"] for item in filters] == [
        "envoy.filters.http.decompressor",
        "envoy.filters.http.compressor",
        "envoy.filters.http.ext_proc",
        "envoy.filters.http.router",
    ]
    decompressor = filters[0]["typed_config"]
    assert decompressor["response_direction_config"]["common_config"]["enabled"] == {
        "default_value": False,
        "runtime_key": "unused",
    }, "behind a response decompressor ext_proc never gets the body (envoyproxy/envoy#21205)"


def test_https_providers_verify_certificates_with_sni() -> None:
    clusters = rendered(ROOT / "examples" / "providers.yaml")["static_resources"]["clusters"]
    openai = next(cluster for cluster in clusters if cluster["name"] == "provider_openai")
    tls = openai["transport_socket"]["typed_config"]

    assert tls["sni"] == "api.openai.com"
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"]["filename"]
    assert validation["match_typed_subject_alt_names"][0]["matcher"]["exact"] == "api.openai.com"


KEY_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def render_providers_example(output: Path) -> int:
    config = str(ROOT / "examples/providers.yaml")
    return main(["envoy-config", "--config", config, "--output", str(output)])


def test_rendering_needs_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    assert render_providers_example(tmp_path / "envoy.yaml") == 0


def test_rendering_contains_no_secret_when_they_are_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinels = {variable: f"sk-sentinel-{variable.lower()}-0042" for variable in KEY_VARIABLES}
    for variable, value in sentinels.items():
        monkeypatch.setenv(variable, value)
    output = tmp_path / "envoy.yaml"

    assert render_providers_example(output) == 0

    printed = output.read_text() + "".join(capsys.readouterr())
    leaked = [value for value in sentinels.values() if value in printed]
    assert not leaked, leaked


def test_tracing_points_envoy_at_the_collector_from_config_or_environment() -> None:
    spec = compile_tracing(TracingSpec(enabled=True))
    assert collector_endpoint(spec, {}) == "http://127.0.0.1:4317"
    assert collector_endpoint(spec, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) == (
        "http://c:4317"
    )
    configured = compile_tracing(TracingSpec(enabled=True, endpoint="http://mine:4317"))
    assert collector_endpoint(configured, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == (
        "http://mine:4317"
    )


@pytest.mark.parametrize("envoy_spans", [True, False])
def test_envoy_traces_only_when_its_spans_are_wanted(envoy_spans: bool, tmp_path: Path) -> None:
    document = yaml.safe_load((ROOT / "examples" / "gateway.yaml").read_text())
    document["telemetry"] = {"tracing": {"enabled": True, "envoy_spans": envoy_spans}}
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(document))
    bootstrap = rendered(config)
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    clusters = {cluster["name"] for cluster in bootstrap["static_resources"]["clusters"]}

    assert ("tracing" in manager["typed_config"]) is envoy_spans
    assert ("otel_collector" in clusters) is envoy_spans
    assert ("layered_runtime" in bootstrap) is envoy_spans  # the tracer's span batching
