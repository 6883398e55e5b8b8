"""The Kubernetes manifests: they render, validate against the Kubernetes schemas, mount the
one gateway.yaml, run locked down, and the Envoy configuration they render is valid."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from extproc.config import load_gateway
from extproc.envoyconfig.bootstrap import build_bootstrap, placement_of, render
from tests.harness import ENVOY, ROOT

MANIFESTS = ROOT / "manifests"
VARIANTS = ["base", "overlays/redis", "overlays/observability"]
GATEWAY_YAML = MANIFESTS / "base" / "gateway.yaml"
KUBERNETES_VERSIONS = sorted(set(all_versions()), key=lambda v: tuple(map(int, v.split("."))))[-2:]
"""The two most recent Kubernetes minor versions kubernetes-validate ships schemas for."""
CORE_GROUPS = ("v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1")


def rendered(variant: str) -> list[dict[str, Any]]:
    output = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / variant)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, rendered(request.param)


def test_every_object_validates_strictly_against_recent_kubernetes(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = variant
    assert len(KUBERNETES_VERSIONS) == 2
    for document in objects:
        assert document["apiVersion"] in CORE_GROUPS, document["apiVersion"]
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)


def test_every_variant_mounts_the_same_gateway_yaml(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = variant
    configs = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("extproc-gateway-config")
    ]
    assert len(configs) == 1
    assert configs[0]["data"]["gateway.yaml"] == GATEWAY_YAML.read_text()
    gateway_pods = [
        p for p in pods(objects) if any("extproc" in c["image"] for c in p["containers"])
    ]
    assert gateway_pods
    for pod in gateway_pods:
        mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert mounted == {configs[0]["metadata"]["name"]}


def test_every_container_runs_locked_down_with_probes_and_limits(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = variant
    for pod in pods(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in containers(pod):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), container["name"]
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), image
            long_running = container in pod["containers"] or container.get("restartPolicy")
            if long_running:
                assert "readinessProbe" in container and "livenessProbe" in container


def test_the_processor_runs_as_a_sidecar_on_a_shared_socket() -> None:
    (pod,) = pods([o for o in rendered("base") if o["metadata"]["name"] == "extproc-gateway"])
    init = {c["name"]: c for c in pod["initContainers"]}
    assert init["processor"]["restartPolicy"] == "Always"
    assert "render-envoy-config" in init
    gateway = load_gateway(GATEWAY_YAML, resolve_secrets=False)
    socket = gateway.processor.address.removeprefix("unix:")
    (envoy,) = pod["containers"]
    for container in (init["processor"], envoy):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[str(Path(socket).parent)] == "socket"


def test_the_rendered_envoy_configuration_is_valid_and_fails_closed(tmp_path: Path) -> None:
    gateway = load_gateway(GATEWAY_YAML, resolve_secrets=False)
    bootstrap = render(build_bootstrap(gateway, placement_of(gateway)))
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    filters = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    http_filters = filters[0]["typed_config"]["http_filters"]
    ext_proc = next(f for f in http_filters if f["name"] == "envoy.filters.http.ext_proc")
    assert ext_proc["typed_config"].get("failure_mode_allow", False) is False
