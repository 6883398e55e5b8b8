"""The Kubernetes manifests: they render, validate against the Kubernetes schemas (and the
Istio, Gateway API and Envoy Gateway fields they use), mount the one gateway.yaml, run locked
down, fail closed, and the Envoy configuration in them is valid."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from extproc.cli import _parser as cli_parser
from extproc.config import load_gateway
from extproc.config.sizing import processor_memory
from extproc.config.units import parse_size
from extproc.envoyconfig.bootstrap import build_bootstrap, render
from extproc.envoyconfig.placement import placement_of
from tests.harness import ENVOY, ROOT

pytestmark = [pytest.mark.manifests, pytest.mark.envoy]

MANIFESTS = ROOT / "manifests"
VARIANTS = [
    "base",
    "overlays/redis",
    "overlays/postgresql",
    "overlays/observability",
    "overlays/istio",
    "overlays/envoy-gateway",
    "overlays/eks",
    "overlays/gke",
]
SIDECAR_EXAMPLE = "overlays/istio/sidecar-example"
MODEL_CHECK = ROOT / "tests" / "k8s-models" / "validate.mjs"
GATEWAY_YAML = MANIFESTS / "config" / "gateway.yaml"
KUBERNETES_VERSIONS = sorted(set(all_versions()), key=lambda v: tuple(map(int, v.split("."))))[-2:]
"""The two most recent Kubernetes minor versions kubernetes-validate ships schemas for."""
CORE_GROUPS = ("v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1")
SCHEMA_GROUPS = (
    "networking.istio.io",
    "security.istio.io",
    "gateway.networking.k8s.io",
    "cert-manager.io",
)
"""The API groups whose objects tests/k8s-models checks against their CRD schemas."""


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


def test_every_core_object_validates_strictly_against_recent_kubernetes(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = variant
    assert len(KUBERNETES_VERSIONS) == 2
    core = [document for document in objects if document["apiVersion"] in CORE_GROUPS]
    assert core
    for document in core:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)


def model_check(objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(MODEL_CHECK)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["overlays/istio", SIDECAR_EXAMPLE, "overlays/envoy-gateway"])
def test_istio_and_gateway_api_objects_match_their_schemas(name: str) -> None:
    objects = rendered(name)
    checked = [o for o in objects if o["apiVersion"].split("/")[0] in SCHEMA_GROUPS]
    result = model_check(objects)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith(f"checked {len(checked)}")


def test_the_schema_check_catches_mistakes() -> None:
    objects = rendered("overlays/istio")
    for document in objects:
        if document["kind"] == "VirtualService":
            document["spec"]["http"][0]["timeout"] = 600
        if document["kind"] == "AuthorizationPolicy":
            document["spec"]["action"] = "PERMIT"
    result = model_check(objects)
    assert result.returncode == 1
    assert "timeout must be string" in result.stdout
    assert "action must be equal to one of the allowed values" in result.stdout
    certificates = rendered("overlays/envoy-gateway")
    for document in certificates:
        if document["kind"] == "Certificate":
            document["spec"]["usages"] = ["serverauth"]
    result = model_check(certificates)
    assert result.returncode == 1
    assert "usages/0 must be equal to one of the allowed values" in result.stdout


ENVOY_GATEWAY_FIELDS = {
    "EnvoyExtensionPolicy": {
        "spec.targetRefs[].group",
        "spec.targetRefs[].kind",
        "spec.targetRefs[].name",
        "spec.extProc[].backendRefs[].name",
        "spec.extProc[].backendRefs[].namespace",
        "spec.extProc[].backendRefs[].port",
        "spec.extProc[].failOpen",
        "spec.extProc[].messageTimeout",
        "spec.extProc[].metadataOptions.forwardingNamespaces.untyped[]",
        "spec.extProc[].processingMode.allowModeOverride",
        "spec.extProc[].processingMode.request.body",
    },
    "Backend": {"spec.endpoints[].fqdn.hostname", "spec.endpoints[].fqdn.port"},
    "EnvoyProxy": {
        "spec.backendTLS.clientCertificateRef.kind",
        "spec.backendTLS.clientCertificateRef.name",
    },
    "HTTPRouteFilter": {
        "spec.directResponse.contentType",
        "spec.directResponse.statusCode",
        "spec.directResponse.body.type",
        "spec.directResponse.body.inline",
    },
}
"""The Envoy Gateway (gateway.envoyproxy.io/v1alpha1) fields the manifests use, as its API
defines them; there is no published schema package to check them against."""
TYPE_PREFIX = "type.googleapis.com/"
BODY_MODES = {"Streamed", "Buffered", "BufferedPartial", "FullDuplexStreamed"}


def leaf_paths(value: Any, prefix: str) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(leaf_paths(v, f"{prefix}.{k}") for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(leaf_paths(item, prefix + "[]") for item in value))
    return {prefix}


def test_envoy_gateway_objects_use_known_fields() -> None:
    objects = [
        o
        for o in rendered("overlays/envoy-gateway")
        if o["apiVersion"].startswith("gateway.envoyproxy.io/")
    ]
    assert {o["kind"] for o in objects} == set(ENVOY_GATEWAY_FIELDS)
    for document in objects:
        assert document["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
        used = leaf_paths(document["spec"], "spec")
        assert used <= ENVOY_GATEWAY_FIELDS[document["kind"]], (
            used - ENVOY_GATEWAY_FIELDS[document["kind"]]
        )
        if document["kind"] == "EnvoyExtensionPolicy":
            for ext_proc in document["spec"]["extProc"]:
                assert ext_proc["processingMode"]["request"]["body"] in BODY_MODES


def ext_proc_patches(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        patch["patch"]["value"]["typed_config"]
        for o in objects
        if o["kind"] == "EnvoyFilter"
        for patch in o["spec"]["configPatches"]
        if patch["applyTo"] == "HTTP_FILTER"
    ]


def test_every_variant_fails_closed() -> None:
    istio = ext_proc_patches(rendered("overlays/istio") + rendered(SIDECAR_EXAMPLE))
    assert len(istio) == 2
    for config in istio:
        assert config["failure_mode_allow"] is False
    policies = [
        o for o in rendered("overlays/envoy-gateway") if o["kind"] == "EnvoyExtensionPolicy"
    ]
    assert [ext["failOpen"] for p in policies for ext in p["spec"]["extProc"]] == [False]


def test_the_istio_filter_configuration_passes_envoy_validate(tmp_path: Path) -> None:
    (config,) = ext_proc_patches(rendered("overlays/istio"))
    cluster = config["grpc_service"]["envoy_grpc"]["cluster_name"]
    manager = {
        "@type": TYPE_PREFIX
        + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": []}]},
        "http_filters": [
            {"name": "envoy.filters.http.ext_proc", "typed_config": config},
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": TYPE_PREFIX + "envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    bootstrap = {
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": cluster,
                    "type": "STRICT_DNS",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": TYPE_PREFIX
                            + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": cluster,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "extproc-processor.extproc",
                                                    "port_value": 50051,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        }
    }
    path = tmp_path / "istio-filter.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


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


def test_every_processor_container_has_the_memory_its_configuration_needs(
    variant: tuple[str, list[dict[str, Any]]],
) -> None:
    gateway = load_gateway(GATEWAY_YAML, resolve_secrets=False)
    need = processor_memory(gateway)
    processors = [
        container
        for pod in pods(variant[1])
        for container in containers(pod)
        if container.get("command", [])[:2] == ["extproc", "serve"]
    ]
    assert processors
    for container in processors:
        limit = parse_size(container["resources"]["limits"]["memory"])
        assert limit >= need, (container["name"], limit, need)


def test_every_processor_mounts_valid_key_files(
    variant: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """gateway.yaml's key_files is a mounted Secret whose entries are keys the gateway takes."""
    document = yaml.safe_load(GATEWAY_YAML.read_text())
    directory = document["key_files"]
    secrets = {o["metadata"]["name"]: o for o in variant[1] if o["kind"] == "Secret"}
    environment: dict[str, str] = {}
    for pod in pods(variant[1]):
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in containers(pod):
            if container.get("command", [])[:2] != ["extproc", "serve"]:
                continue
            environment |= container_environment(container, secrets)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            secret = secrets[volumes[mounts[directory]]["secret"]["secretName"]]
            (tmp_path / "keys").mkdir(exist_ok=True)
            for name, entry in secret["stringData"].items():
                (tmp_path / "keys" / name).write_text(entry)
    document["key_files"] = "keys"
    for name, value in secrets["extproc-provider-keys"]["stringData"].items():
        (tmp_path / name).write_text(value)
    (tmp_path / "spend-ledger").write_text(secrets["extproc-spend-ledger"]["stringData"]["url"])
    text = yaml.safe_dump(document).replace("/var/run/secrets/providers/", "")
    text = text.replace("/var/run/secrets/spend-ledger/url", "spend-ledger")
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    gateway = load_gateway(config, environment)
    assert "example-bot" in {p.key_id for p in gateway.principals.values()}
    assert gateway.spend.ledger is not None


def container_environment(
    container: dict[str, Any], secrets: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """The variables a container gets: literal values, and values from the variant's Secrets."""
    environment = {}
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif reference := variable.get("valueFrom", {}).get("secretKeyRef"):
            secret = secrets[reference["name"]]["stringData"]
            environment[variable["name"]] = secret[reference["key"]]
    return environment


def test_the_processor_runs_as_a_sidecar_on_a_shared_socket() -> None:
    """Base variant: Envoy and the processor share a pod and a Unix socket."""
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


CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are pinned by release tag; digests are set when an image is released",
    "CKV_K8S_15": "release tags are immutable, so IfNotPresent spares a registry round trip",
}


def test_a_security_scan_of_every_variant_finds_nothing(tmp_path: Path) -> None:
    for variant_name in [*VARIANTS, SIDECAR_EXAMPLE]:
        objects = rendered(variant_name)
        (tmp_path / (variant_name.replace("/", "-") + ".yaml")).write_text(
            yaml.safe_dump_all(objects)
        )
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']}" for check in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 500


def routed_providers(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Which provider names each routing object sends `x-extproc-route` to."""
    found: dict[str, set[str]] = {}
    for document in objects:
        if document["kind"] == "VirtualService":
            found["VirtualService"] = {
                match["headers"]["x-extproc-route"]["exact"]
                for route in document["spec"]["http"]
                for match in route.get("match", [])
                if "headers" in match
            }
        if document["kind"] == "HTTPRoute":
            found["HTTPRoute"] = {
                header["value"]
                for rule in document["spec"]["rules"]
                for match in rule["matches"]
                for header in match.get("headers", [])
                if header["name"] == "x-extproc-route"
            }
    return found


def test_mesh_and_gateway_api_routes_cover_every_configured_provider() -> None:
    """And every MCP server, by its routing value `mcp:<name>`."""
    gateway = load_gateway(GATEWAY_YAML, resolve_secrets=False)
    upstreams = [*gateway.providers.values(), *gateway.mcp_servers.values()]
    providers = {*gateway.providers, *(server.route for server in gateway.mcp_servers.values())}
    hosts = {upstream.host for upstream in upstreams}
    istio = rendered("overlays/istio")
    assert routed_providers(istio) == {"VirtualService": providers}
    assert {h for o in istio if o["kind"] == "ServiceEntry" for h in o["spec"]["hosts"]} == hosts
    assert {o["spec"]["host"] for o in istio if o["kind"] == "DestinationRule"} == hosts
    envoy_gateway = rendered("overlays/envoy-gateway")
    assert routed_providers(envoy_gateway) == {"HTTPRoute": providers}
    backends = {
        endpoint["fqdn"]["hostname"]
        for o in envoy_gateway
        if o["kind"] == "Backend"
        for endpoint in o["spec"]["endpoints"]
    }
    assert backends == hosts


@pytest.mark.parametrize(
    ("name", "annotation", "egress"),
    [
        ("overlays/eks", "eks.amazonaws.com/role-arn", {"169.254.170.23/32"}),
        (
            "overlays/gke",
            "iam.gke.io/gcp-service-account",
            {"169.254.169.254/32", "169.254.169.252/32"},
        ),
    ],
)
def test_cloud_overlays_give_the_pod_a_cloud_identity_instead_of_a_key(
    name: str, annotation: str, egress: set[str]
) -> None:
    """Bedrock and Vertex AI credentials come from the pod's identity (IRSA or Pod Identity,
    Workload Identity): an annotated ServiceAccount, and the way to its credential endpoint."""
    objects = rendered(name)
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert annotation in account["metadata"]["annotations"]
    [pod] = pods(objects)
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    [policy] = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "extproc-gateway"
    ]
    blocks = {
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    }
    assert egress <= blocks


INGRESS_GATEWAY = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def processor_pod(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], argparse.Namespace]:
    """The processor's Deployment and its `extproc serve` command line, as the CLI reads it."""
    [deployment] = [
        o
        for o in objects
        if o["metadata"]["name"] == "extproc-processor" and o["kind"] == "Deployment"
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, cli_parser().parse_args(container["command"][1:])


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_in_istio_the_mesh_admits_only_the_ingress_gateway_to_the_processor() -> None:
    objects = rendered("overlays/istio")
    deployment, serve = processor_pod(objects)
    assert serve.allow_plaintext and serve.tls_dir is None
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [namespace] = of_kind(objects, "Namespace")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    [peer] = of_kind(objects, "PeerAuthentication")
    assert peer["spec"]["mtls"]["mode"] == "STRICT"
    assert peer["spec"]["selector"]["matchLabels"].items() <= labels.items()
    grpc_port = serve.address.rsplit(":", 1)[1]
    assert grpc_port not in peer["spec"].get("portLevelMtls", {})
    [policy] = of_kind(objects, "AuthorizationPolicy")
    assert policy["spec"]["action"] == "ALLOW"
    assert policy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    admitted = [
        rule.get("from")
        for rule in policy["spec"]["rules"]
        if any(grpc_port in to["operation"]["ports"] for to in rule["to"])
    ]
    assert admitted == [[{"source": {"principals": [INGRESS_GATEWAY]}}]]


def test_with_envoy_gateway_envoy_and_the_processor_prove_themselves_by_certificate() -> None:
    objects = rendered("overlays/envoy-gateway")
    deployment, serve = processor_pod(objects)
    assert serve.tls_dir is not None and not serve.allow_plaintext
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    processor_secret = volumes[mounts[str(serve.tls_dir)]]["secret"]["secretName"]
    for probe in ("readinessProbe", "livenessProbe"):
        health = cli_parser().parse_args(container[probe]["exec"]["command"][1:])
        assert health.tls_dir == serve.tls_dir
    certificates = {c["spec"]["secretName"]: c["spec"] for c in of_kind(objects, "Certificate")}
    processor = certificates[processor_secret]
    assert {"server auth", "client auth"} <= set(processor["usages"])
    assert "127.0.0.1" in processor["ipAddresses"]  # the probe's name for it
    [proxy] = of_kind(objects, "EnvoyProxy")
    envoy = certificates[proxy["spec"]["backendTLS"]["clientCertificateRef"]["name"]]
    assert envoy["usages"] == ["client auth"]
    # One CA signs both, and nothing else: the processor admits what it signed.
    assert envoy["issuerRef"] == processor["issuerRef"]
    [issuer] = [
        i for i in of_kind(objects, "Issuer") if i["metadata"]["name"] == envoy["issuerRef"]["name"]
    ]
    assert certificates[issuer["spec"]["ca"]["secretName"]]["isCA"] is True
    [service] = [
        o for o in of_kind(objects, "Service") if o["metadata"]["name"] == "extproc-processor"
    ]
    [policy] = [
        p
        for p in of_kind(objects, "BackendTLSPolicy")
        if p["spec"]["targetRefs"][0]["kind"] == "Service"
    ]
    assert policy["spec"]["targetRefs"][0]["name"] == service["metadata"]["name"]
    assert policy["spec"]["validation"]["hostname"] in processor["dnsNames"]
    [ca_ref] = policy["spec"]["validation"]["caCertificateRefs"]
    assert ca_ref["kind"] == "Secret" and ca_ref["name"] in certificates
    [gateway_class] = of_kind(objects, "GatewayClass")
    assert gateway_class["spec"]["parametersRef"]["name"] == proxy["metadata"]["name"]


def test_the_postgresql_overlay_keeps_the_ledger_in_postgresql_and_lets_the_gateway_reach_it() -> (
    None
):
    objects = rendered("overlays/postgresql")
    (secret,) = [o for o in objects if o["metadata"]["name"] == "extproc-spend-ledger"]
    assert secret["stringData"]["url"].startswith("postgresql://")
    egress = [
        rule
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "extproc-gateway"}
        for rule in o["spec"].get("egress", [])
    ]
    assert any({"port": 5432, "protocol": "TCP"} in rule["ports"] for rule in egress)
    # The URL reaches the processor as a file, never in an environment variable.
    for pod in pods(objects):
        for container in containers(pod):
            assert "EXTPROC_SPEND_LEDGER" not in {item["name"] for item in container.get("env", [])}
