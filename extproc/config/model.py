"""The runtime form of the configuration: frozen values, indexed for the request path."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from extproc.config.address import worker_addresses
from extproc.config.claim_template import ClaimTemplate, claim_value
from extproc.config.schema import ProviderKind, Publisher
from extproc.config.secrets import Secret
from extproc.credentials.aws import AwsCredentials
from extproc.credentials.gcp import GcpCredentials
from extproc.guardrails.policy import Policy
from extproc.quota.limits import Limit, Price


class Reachable:
    """An upstream at `scheme://host:port` (a provider, an MCP server)."""

    __slots__ = ()
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """The Host of requests to it: its port only when not the scheme's."""
        default_port = 443 if self.tls else 80
        return self.host if self.port == default_port else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Provider(Reachable):
    name: str
    kind: ProviderKind
    scheme: str
    host: str
    port: int
    base_path: str
    """Path prefix from base_url without a trailing slash, e.g. `` or `/openai`."""
    api_key: Secret | None
    api_version: str | None
    anthropic_version: str
    timeout: float
    connect_timeout: float
    max_concurrent_requests: int
    idle_timeout: float
    ca_file: str
    stream_usage: bool = True
    responses_api: bool = True
    region: str | None = None
    aws: AwsCredentials | None = field(default=None, compare=False)
    """Bedrock: where its requests' signing credentials come from (None until resolved)."""
    project: str | None = None
    location: str | None = None
    organization: str | None = None
    forward_headers: frozenset[str] = frozenset()
    """Client headers passed on to this provider as they are."""
    publisher: Publisher = "google"
    gcp: GcpCredentials | None = field(default=None, compare=False)
    """Vertex AI: where its access tokens come from (None until resolved)."""
    """OpenAI and Azure OpenAI kinds: Responses calls pass through (else translated)."""

    @property
    def cluster(self) -> str:
        """The Envoy cluster that reaches this provider."""
        return f"provider_{self.name}"


ReasoningPolicy = Literal["map", "always", "drop", "refuse"]
"""What a translated call does with a client's thinking request: map it to the target's
control where the model is known to take one, always map it, drop it, or refuse the call."""


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str
    weight: int
    options: Mapping[str, Any]
    priority: int = 0
    price: Price | None = None
    """Its own price, else the alias's."""
    headers: tuple[tuple[str, str], ...] = ()
    """Fixed headers set on every request to this target."""
    reasoning: ReasoningPolicy = "map"
    """What a translated call does with the client's thinking request (the alias's)."""


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How a call moves from a failed attempt to the next (Envoy's router does it)."""

    on: tuple[str, ...]
    """Outcomes that move on: `connect-failure`, `reset`, `timeout`, `429`, `5xx`."""
    attempts: int
    per_attempt_timeout: float
    backoff_base: float
    backoff_max: float


@dataclass(frozen=True, slots=True)
class ModelRoute:
    alias: str
    targets: tuple[Target, ...]
    cumulative_weights: tuple[int, ...]
    max_output_tokens: int | None = None
    retry: RetrySettings | None = None
    """None: one attempt on the chosen target (one priority level, no `retry` block)."""
    guardrails: tuple[str, ...] = ()
    """The policies every call of the alias is screened by."""

    @property
    def price(self) -> Price | None:
        """The price a call is reserved at before it is known which target answers: the
        highest of its targets' (None when one has none)."""
        return Price.highest([target.price for target in self.targets])

    @property
    def priorities(self) -> tuple[int, ...]:
        """The priority levels of the targets that take traffic, first first."""
        return tuple(sorted({target.priority for target in self.targets if target.weight}))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a gateway key, by its id (never by the key itself), or an identity
    the mesh verified, by the principal its rule names."""

    key_id: str
    """The key's id; for an identity, its principal (`user:alice`)."""
    team: str | None
    models: frozenset[str]
    all_models: bool
    metadata: Mapping[str, str] = field(default_factory=dict)
    limits: tuple[Limit, ...] = ()
    """The key's own limits, then its team's."""
    not_before: float | None = None
    """When this digest of the key starts being accepted (Unix time), if bounded …"""
    expires_at: float | None = None
    """… and when it stops."""
    kind: str = "key"
    """`key`, `jwt` or `spiffe`: where the caller's identity came from (`key+jwt` …: both)."""
    subject: str | None = None
    """The verified identity behind the call (`user:alice`); None for a key alone."""
    guardrails: tuple[str, ...] = ()
    """The policies the caller's calls are screened by (its own, then its team's)."""
    mcp: tuple[McpGrant, ...] = ()
    """What it may use of the MCP servers: each grant must allow it (a key's, and its end
    user's identity's)."""
    expose_cost: bool = False
    """Its answers carry what each call cost."""

    def may_use(self, alias: str) -> bool:
        return self.all_models or alias in self.models

    def may_reach(self, server: str, kind: McpKind | None = None, name: str = "") -> bool:
        """Whether it may use MCP server `server` (and, given, its tool, prompt or resource
        `name`): every grant it holds must allow it."""
        return bool(self.mcp) and all(
            server in grant and (kind is None or grant[server].allows(kind, name))
            for grant in self.mcp
        )


McpKind = Literal["tools", "prompts", "resources"]


@dataclass(frozen=True, slots=True)
class ServerGrant:
    """What of one MCP server a caller may use (patterns; None: not filtered)."""

    tools: tuple[str, ...]
    prompts: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None

    def allows(self, kind: McpKind, name: str) -> bool:
        patterns = getattr(self, kind)
        return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


McpGrant = Mapping[str, ServerGrant]
"""MCP servers by name, each with what may be used there."""


@dataclass(frozen=True, slots=True)
class McpServer(Reachable):
    """An MCP server behind the gateway (see `McpServerSpec`)."""

    name: str
    scheme: str
    host: str
    port: int
    path: str
    """Its MCP endpoint's path (and query)."""
    credential: Secret | None
    headers: tuple[tuple[str, str], ...]
    timeout: float
    connect_timeout: float
    ca_file: str
    max_concurrent_requests: int = 10000

    @property
    def cluster(self) -> str:
        return f"mcp_{self.name}"

    @property
    def route(self) -> str:
        """The routing header's value that reaches it."""
        return f"mcp:{self.name}"


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    name: str
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None
    jwks_file: Path | None
    jwks_cache: float
    clock_skew: float


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """What a verified identity matching it is (see `IdentityRuleSpec`)."""

    name: str
    source: str
    """`jwt`, `spiffe` or `ext_authz`: the kind of identity the rule matches."""
    issuer: str | None
    """For tokens: the name of the issuer under `identity.jwt`."""
    claims: Mapping[str, frozenset[str]]
    spiffe: re.Pattern[str] | None
    principal: ClaimTemplate
    """Who the caller is (`user:{sub}`)."""
    team: ClaimTemplate | None
    models: frozenset[str]
    all_models: bool
    metadata: Mapping[str, str]
    limits: tuple[Limit, ...]
    """Shared by everyone the rule matches (scope `rule:<name>`)."""
    subject_limits: tuple[tuple[str, Limit], ...] = ()
    """Each with the claim that splits it: one counter per value."""
    guardrails: tuple[str, ...] = ()
    mcp: tuple[McpGrant, ...] = ()

    def limits_of(self, claims: Mapping[str, Any]) -> tuple[Limit, ...] | None:
        """The rule's limits for a caller with `claims`, each split limit scoped to the
        caller's value (`rule:<name>:sub=alice`); None when a splitting claim is missing."""
        limits = list(self.limits)
        for claim, limit in self.subject_limits:
            value = claim_value(claims, tuple(claim.split(".")), None)
            if value is None:
                return None
            subject = quote(value, safe="@.-_+")
            limits.append(replace(limit, scope=f"{limit.scope}:{claim}={subject}"))
        return tuple(limits)


@dataclass(frozen=True, slots=True)
class ExtAuthz:
    address: str
    timeout: float


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    jwt: Mapping[str, JwtIssuer] = field(default_factory=dict)
    ext_authz: ExtAuthz | None = None
    xfcc_from_trusted_hop: bool = False
    rules: tuple[IdentityRule, ...] = ()
    team_limits: Mapping[str, tuple[Limit, ...]] = field(default_factory=dict)
    """Every team's limits, for rules whose team comes from a claim."""
    team_guardrails: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Every team's guardrail policies, likewise."""

    @property
    def reads_ext_authz(self) -> bool:
        """Some rule matches what an authorization service vouched for."""
        return any(rule.source == "ext_authz" for rule in self.rules)


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    store: str
    password: Secret | None
    on_store_error: Literal["deny", "allow"]
    timeout: float
    default_max_output_tokens: int

    @property
    def revealed_password(self) -> str | None:
        return self.password.reveal() if self.password is not None else None


MESSAGE_OVERHEAD = 1024 * 1024
"""Room above the body limit for the rest of an ext_proc message."""


@dataclass(frozen=True, slots=True)
class ListenTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None


@dataclass(frozen=True, slots=True)
class ListenSettings:
    address: str
    port: int
    admin_port: int
    max_request_body: int
    request_timeout: float
    tls: ListenTls | None = None

    @property
    def client_certificates(self) -> bool:
        """Envoy requires client certificates: their SPIFFE IDs identify callers."""
        return self.tls is not None and self.tls.client_ca_file is not None

    @property
    def max_message(self) -> int:
        """The largest ext_proc message either side takes: a whole body, and room for the
        rest of the message."""
        return self.max_request_body + MESSAGE_OVERHEAD


@dataclass(frozen=True, slots=True)
class ProcessorTls:
    """Files, resolved beside the configuration file (see `ProcessorTlsSpec`)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path
    envoy_cert_file: Path
    envoy_key_file: Path
    ca_file: Path
    server_name: str | None

    @classmethod
    def from_directory(cls, directory: Path) -> ProcessorTls:
        """A Kubernetes TLS Secret as cert-manager writes it (tls.crt, tls.key, ca.crt), for
        both sides: the one certificate serves, and proves a local probe to the processor."""
        cert, key, ca = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"
        return cls(cert, key, ca, cert, key, ca, None)


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    address: str
    workers: int
    message_timeout: float
    tls: ProcessorTls | None = None
    allow_plaintext: bool = False

    def worker_addresses(self) -> list[str]:
        return worker_addresses(self.address, self.workers)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    enabled: bool
    endpoint: str | None
    sampling: float
    service_name: str
    record_content: bool
    redact: tuple[str, ...]
    envoy_spans: bool = False
    """Envoy's tracer records its own spans too (the request's, and each ext_proc call's)."""

    def active(self, environ: Mapping[str, str]) -> bool:
        """Enabled here, and not switched off by the standard `OTEL_SDK_DISABLED=true` (which
        lets one file serve deployments with and without a collector)."""
        return self.enabled and environ.get("OTEL_SDK_DISABLED", "").lower() != "true"

    def envoy_traces(self, environ: Mapping[str, str]) -> bool:
        """Whether Envoy's configuration turns its tracer on."""
        return self.envoy_spans and self.active(environ)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    prometheus_port: int | None
    prometheus_address: str
    otlp: bool
    export_interval: float


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    tracing: TracingSettings
    metrics: MetricsSettings
    access_log: str
    envoy_access_log: str = "off"


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    store: Secret
    """`sqlite:<path>` or a PostgreSQL URL (which may carry a password: never printed)."""
    journal: Path
    retention: float
    max_backlog: int


@dataclass(frozen=True, slots=True)
class AlertSettings:
    url: Secret
    thresholds: tuple[float, ...]
    """Fractions of a limit, ascending."""
    timeout: float


@dataclass(frozen=True, slots=True)
class SpendSettings:
    expose_cost: bool = False
    ledger: LedgerSettings | None = None
    alerts: AlertSettings | None = None


@dataclass(frozen=True, slots=True)
class Gateway:
    source: Path
    listen: ListenSettings
    processor: ProcessorSettings
    providers: Mapping[str, Provider]
    models: Mapping[str, ModelRoute]
    principals: Mapping[str, Principal]
    """By SHA-256 hex digest of the gateway key: one principal per digest, with that
    digest's window."""
    quota: QuotaSettings
    telemetry: TelemetrySettings
    key_files: Path | None = None
    """The directory keys are also read from (followed like the file)."""
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    key_expiry_notice: float = 7 * 86400.0
    expose_provider: bool = False
    """Answers name the provider that gave them (`x-extproc-provider`)."""
    client_user_agent: str = "drop"
    """`drop`: providers see the gateway's user-agent; `append`: the client's after it."""
    guardrails: Mapping[str, Policy] = field(default_factory=dict)
    mcp_servers: Mapping[str, McpServer] = field(default_factory=dict)
    spend: SpendSettings = field(default_factory=SpendSettings)

    def policies(self, principal: Principal, route: ModelRoute) -> tuple[Policy, ...]:
        """The guardrail policies a call by `principal` to `route` is screened by."""
        names = dict.fromkeys(principal.guardrails + route.guardrails)
        return tuple(self.guardrails[name] for name in names)

    def output_cap(self, route: ModelRoute) -> int:
        """The output a request to `route` is taken to ask for when it sets no cap."""
        return route.max_output_tokens or self.quota.default_max_output_tokens
