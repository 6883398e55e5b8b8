"""The YAML file format, validated by pydantic: strict types, unknown fields are errors."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from extproc import headers
from extproc.config.address import parse_grpc_address
from extproc.config.secrets import REFERENCE
from extproc.config.units import Bytes, Seconds, parse_duration

ProviderKind = Literal["openai", "azure", "anthropic", "gemini", "bedrock", "vertex"]
Publisher = Literal["google", "anthropic"]
"""openai: any OpenAI-compatible API; azure: Azure OpenAI; anthropic: Anthropic's Messages
API; gemini: Google's Gemini API (generateContent)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must start with a letter or digit and use only letters, digits and . _ : / @ + -"
        )
    return value


def _check_digest(value: str) -> str:
    value = value.lower()
    if not _SHA256.match(value):
        raise ValueError("must be 64 hexadecimal digits (the SHA-256 of the key)")
    return value


def _date_as_text(value: object) -> object:
    """YAML reads an unquoted `2024-10-21` as a date; an API version means the text."""
    return value.isoformat() if isinstance(value, datetime.date) else value


_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]{0,4096}$")


def _check_header_name(value: str) -> str:
    """A header a client may have passed on, or that a target gets: never one that carries a
    credential or routes the request (those are the gateway's alone)."""
    if not _HEADER_NAME.match(value):
        raise ValueError("must be a lower-case header name")
    if headers.owned_by_gateway(value):
        raise ValueError(f"{value} is set by the gateway alone (credentials, routing, framing)")
    return value


def _check_header_value(value: str) -> str:
    if not _HEADER_VALUE.match(value):
        raise ValueError("must be printable text without line breaks")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Digest = Annotated[str, AfterValidator(_check_digest)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]


McpPatterns = list[Annotated[str, Field(min_length=1, max_length=256)]]
"""Names (or URIs) and patterns with `*`; `["*"]`: all of them."""


class McpGrantSpec(BaseModel):
    """What of one MCP server a caller may use: tools by name; and, where given, prompts by
    name and resources by URI (unset: the server's prompts and resources are not filtered)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tools: McpPatterns = Field(default_factory=list)
    prompts: McpPatterns | None = None
    resources: McpPatterns | None = None


McpGrants = dict[Name, McpPatterns | McpGrantSpec]
"""MCP servers a caller may use: each with the tools it may call (a list), or with its tools,
prompts and resources (an object)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


MAX_REQUEST_BODY = 128 * 1024 * 1024
"""A body travels to the processor in one ext_proc message; the processor takes messages up
to twice this (room for answers larger than the request)."""


class ListenTlsSpec(Strict):
    """Envoy terminates TLS for clients, and with `client_ca_file` requires their
    certificates: a certificate's SPIFFE ID (URI SAN) then identifies the caller."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    """Clients must present a certificate chaining to this CA (PEM); none: no client
    certificates."""


class ListenSpec(Strict):
    address: str = "127.0.0.1"
    port: int = Field(default=10000, ge=0, le=65535)
    admin_port: int = Field(default=9901, ge=0, le=65535)
    max_request_body: Annotated[Bytes, Field(gt=0, le=MAX_REQUEST_BODY)] = 8 * 1024 * 1024
    request_timeout: Seconds = 60.0
    """How long a client may take to send its whole request (cuts off very slow uploads)."""
    tls: ListenTlsSpec | None = None


class ProcessorTlsSpec(Strict):
    """mTLS between Envoy and the processor: each side proves itself to the other."""

    cert_file: str
    """The processor's certificate (PEM, with its chain) …"""
    key_file: str
    """… and its key."""
    client_ca_file: str
    """Envoy's client certificate must chain to this CA (PEM): nobody else gets an answer."""
    envoy_cert_file: str
    """Envoy's client certificate (PEM), as the rendered Envoy configuration loads it …"""
    envoy_key_file: str
    """… and its key."""
    ca_file: str
    """What Envoy checks the processor's certificate against (PEM)."""
    server_name: str | None = None
    """The name Envoy expects in the processor's certificate (SNI too); default: the host."""


class ProcessorSpec(Strict):
    address: str = "127.0.0.1:50051"
    """Where the processor listens: `host:port`, or `unix:/path` when it shares a pod with Envoy."""
    workers: int = Field(default=1, ge=1, le=64)
    """One process each (the GIL); worker i listens on port+i, or on the socket path + `.i`."""
    message_timeout: Seconds = 5.0
    """How long Envoy waits for each processor answer before failing the request (504).
    A healthy processor answers in about a millisecond; this is the net under a stall."""
    tls: ProcessorTlsSpec | None = None
    """mTLS with Envoy: required on an address others can reach (not a Unix socket or a
    loopback address), unless `allow_plaintext` says a mesh authenticates Envoy instead."""
    allow_plaintext: bool = False
    """Serve plaintext on a reachable address: only behind a mesh sidecar that requires mTLS
    and an authorization policy admitting Envoy alone (Istio STRICT)."""

    @model_validator(mode="after")
    def _check_address(self) -> ProcessorSpec:
        if not parse_grpc_address(self.address).local and not self.tls and not self.allow_plaintext:
            raise ValueError(PLAINTEXT_REFUSED)
        return self


PLAINTEXT_REFUSED = (
    "a processor others can reach must require mTLS (processor.tls), or say that a mesh "
    "authenticates Envoy in front of it (processor.allow_plaintext: true)"
)


class ProviderSpec(Strict):
    kind: ProviderKind
    base_url: str | None = None
    """Required, but for Bedrock: its regional endpoint unless set (a VPC endpoint, a test)."""
    api_key: str | None = None
    """A reference, `${env:NAME}` or `${file:/path}`; never the key itself."""
    api_version: Annotated[str | None, BeforeValidator(_date_as_text)] = None
    """Azure OpenAI: the `api-version` query parameter (required). Gemini: the API version in
    the path (default `v1beta`)."""
    anthropic_version: str = "2023-06-01"
    timeout: Seconds = 600.0
    """Upper bound on one upstream response, streams included."""
    idle_timeout: Seconds = 120.0
    """Longest silence in the middle of a streamed answer: a provider that sends nothing for
    this long has its stream ended, the client gets its schema's error event, and the call is
    logged `upstream_timeout`."""
    connect_timeout: Seconds = 5.0
    max_concurrent_requests: int = Field(default=10000, ge=1)
    """Envoy's circuit breaker for this provider (Envoy's own default of 1024 is low for LLMs)."""
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    """CA bundle that verifies an https provider's certificate."""
    stream_usage: bool = True
    """Ask OpenAI-style streams for their usage event (`stream_options.include_usage`) when the
    client did not; turn off for APIs that reject the field (Azure OpenAI before
    2024-09-01-preview): such streams are then charged from their counted content."""
    region: str | None = None
    """Bedrock: the AWS region (required)."""
    aws_profile: str | None = None
    """Bedrock: a profile of the shared AWS config files; unset: the standard credential
    chain (environment, IRSA web identity, EKS Pod Identity, instance metadata)."""
    project: str | None = None
    """Vertex AI: the Google Cloud project (required). OpenAI: the project the key's use is
    billed to (`OpenAI-Project`); a client's own is never passed on."""
    organization: str | None = None
    """OpenAI: the organization the key's use is billed to (`OpenAI-Organization`); a client's
    own is never passed on."""
    forward_headers: list[HeaderName] = Field(default_factory=list)
    """Client headers passed on to this provider as they are (exact names), beside the few
    every request keeps; credentials and the gateway's own headers are refused."""
    location: str | None = None
    """Vertex AI: the region (`us-central1`, …) or `global` (required)."""
    publisher: Publisher = "google"
    """Vertex AI: whose models — Google's (Gemini) or Anthropic's (Claude)."""
    responses_api: bool = True
    """OpenAI and Azure OpenAI: the provider serves the Responses API (`/v1/responses`), so
    Responses calls pass through as they are; turn off for OpenAI-compatible servers without
    it: their Responses calls are translated to Chat Completions."""

    @model_validator(mode="after")
    def _check_kind_fields(self) -> ProviderSpec:
        if self.kind == "azure" and not self.api_version:
            raise ValueError("azure providers need api_version")
        if self.kind not in ("azure", "gemini") and self.api_version is not None:
            raise ValueError("api_version applies to azure and gemini providers only")
        if self.kind not in ("openai", "azure") and "responses_api" in self.model_fields_set:
            raise ValueError("responses_api applies to openai and azure providers only")
        if self.kind == "vertex":
            if not self.project or not self.location:
                raise ValueError("vertex providers need project and location")
            if self.api_key is not None:
                raise ValueError("vertex providers use Google Cloud credentials, not an api_key")
        elif self.location is not None:
            raise ValueError("location applies to vertex providers only")
        if self.kind == "bedrock":
            if not self.region:
                raise ValueError("bedrock providers need region")
            if self.api_key is not None:
                raise ValueError("bedrock providers sign with AWS credentials, not an api_key")
        elif self.region is not None or self.aws_profile is not None:
            raise ValueError("region and aws_profile apply to bedrock providers only")
        elif self.base_url is None and self.kind != "vertex":
            raise ValueError("base_url is required")
        return self

    @model_validator(mode="after")
    def _check_account_fields(self) -> ProviderSpec:
        if self.project is not None and self.kind not in ("vertex", "openai"):
            raise ValueError("project applies to vertex and openai providers only")
        if self.organization is not None and self.kind != "openai":
            raise ValueError("organization applies to openai providers only")
        return self


class PriceSpec(Strict):
    """USD per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(default=None, ge=0)
    """Input read from the provider's prompt cache; unset: priced as other input."""
    cache_write_per_million: float | None = Field(default=None, ge=0)
    """Input written to the prompt cache (Anthropic); unset: priced as other input."""


class TargetSpec(Strict):
    provider: Name
    model: Name
    weight: int = Field(default=1, ge=0)
    """Share of the traffic among the targets of the same priority."""
    priority: int = Field(default=0, ge=0, le=7)
    """0 is tried first; a failed attempt moves on to the next priority."""
    options: dict[str, Any] = Field(default_factory=dict)
    price: PriceSpec | None = None
    """This target's price when it answers; unset: the alias's entry in `prices`."""
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    """Fixed headers set on every request to this target."""


RETRY_OUTCOMES = ("connect-failure", "reset", "timeout", "429", "5xx")
"""What moves a request on to its next attempt; other 4xx answers never do."""


def _codes_as_text(value: object) -> object:
    """`429` may be written unquoted."""
    if isinstance(value, list):
        return [str(item) if isinstance(item, int) else item for item in value]
    return value


class BackoffSpec(Strict):
    base: Seconds = 0.025
    max: Seconds = 0.25

    @model_validator(mode="after")
    def _check_order(self) -> BackoffSpec:
        if self.base <= 0 or self.max < self.base:
            raise ValueError("needs 0 < base <= max")
        return self


class RetrySpec(Strict):
    """How a model call moves on after a failed attempt (unset fields: the `routing.retry`
    default, then the built-in one)."""

    retry_on: Annotated[
        list[Literal["connect-failure", "reset", "timeout", "429", "5xx"]] | None,
        BeforeValidator(_codes_as_text),
    ] = None
    """Outcomes that move on (`on` alone would read as a YAML boolean)."""
    attempts: int | None = Field(default=None, ge=1, le=10)
    """Attempts in all, the first included; default: one per priority level."""
    per_attempt_timeout: Seconds | None = None
    """Default: the provider's `timeout`."""
    backoff: BackoffSpec | None = None


class RoutingSpec(Strict):
    retry: RetrySpec = Field(default_factory=RetrySpec)
    expose_provider: bool = False
    """Tell clients which provider answered (`x-extproc-provider`)."""
    client_user_agent: Literal["drop", "append"] = "drop"
    """Providers see the gateway's `user-agent`; `append` adds the client's after it."""


class ModelSpec(Strict):
    """One alias: either `provider` + `model` (+ `options`), or a list of weighted `targets`."""

    provider: Name | None = None
    model: Name | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    targets: list[TargetSpec] = Field(default_factory=list)
    max_output_tokens: int | None = Field(default=None, ge=1)
    """The completion size quotas reserve when a request sets no `max_tokens`."""
    retry: RetrySpec | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    """Fixed headers set on every request to this alias's provider (the single form)."""
    guardrails: list[Name] = Field(default_factory=list)
    """Policies under `guardrails` that apply to every call of this alias."""
    reasoning: Literal["map", "always", "drop", "refuse"] = "map"
    """A client's thinking request on a translated call: mapped to the target's reasoning
    control where the model is known to have one (`map`), whatever the model (`always`),
    never (`drop`), or refused with 400 (`refuse`)."""

    @model_validator(mode="after")
    def _check_form(self) -> ModelSpec:
        single = self.provider is not None or self.model is not None or self.options
        if single and self.targets:
            raise ValueError("use either provider/model/options or targets, not both")
        if not single and not self.targets:
            raise ValueError("needs provider and model, or targets")
        if single and (self.provider is None or self.model is None):
            raise ValueError("needs both provider and model")
        if self.targets and self.headers:
            raise ValueError("with targets, set headers on each target")
        if self.targets and sum(t.weight for t in self.targets) == 0:
            raise ValueError("targets: at least one weight must be above 0")
        return self

    def all_targets(self) -> list[TargetSpec]:
        if self.targets:
            return self.targets
        assert self.provider is not None and self.model is not None
        return [
            TargetSpec(
                provider=self.provider, model=self.model, options=self.options, headers=self.headers
            )
        ]


LIMIT_METRICS = (
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "usd",
    "concurrent",
    "tool_calls",
)
CALENDAR_PERIODS = ("day", "month")


def _check_period(value: object) -> object:
    if value is None or value in CALENDAR_PERIODS:
        return value
    if parse_duration(value) < 1:
        raise ValueError("must be at least 1s")
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
        ) from None
    return value


class LimitSpec(Strict):
    """One cap: exactly one of the metric fields, over a window (`per`) unless `concurrent`."""

    requests: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    """Input plus output tokens."""
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    usd: float | None = Field(default=None, ge=0)
    """Money, priced with the `prices` table."""
    concurrent: int | None = Field(default=None, ge=0)
    """Requests in flight at once; no window (with `tool`: MCP tool calls in flight)."""
    tool_calls: int | None = Field(default=None, ge=0)
    """Calls of MCP tools (`tools/call`), over the window."""
    per: Annotated[str | int | float | None, AfterValidator(_check_period)] = None
    """A duration (`30s`, `1m`, `1h`, `7d`) or a calendar period (`day`, `month`)."""
    tz: Annotated[str, AfterValidator(_check_zone)] = "UTC"
    """Time zone of calendar periods."""
    model: Name | None = None
    """Count only requests for this model alias."""
    tool: str | None = Field(default=None, min_length=1, max_length=256)
    """Count only calls of MCP tools matching `server/tool` (`*` matches any part:
    `docs/*`, `*/search`); for `tool_calls` and `concurrent` limits."""
    mode: Literal["enforce", "shadow"] = "enforce"
    """`shadow` counts and logs would-be refusals but never refuses."""
    clamp_max_tokens: bool = False
    """Lower the request's max_tokens to what is left instead of refusing."""
    per_subject: str | None = None
    """In an identity rule: one counter per distinct value of this claim (`sub`, `email`; or
    `spiffe`, the SPIFFE ID), created on first use, instead of one shared by the rule."""

    @property
    def metric(self) -> str:
        return next(name for name in LIMIT_METRICS if getattr(self, name) is not None)

    @model_validator(mode="after")
    def _check_form(self) -> LimitSpec:
        given = [name for name in LIMIT_METRICS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of " + ", ".join(LIMIT_METRICS))
        if given[0] == "concurrent":
            if self.per is not None:
                raise ValueError("concurrent limits have no window: remove per")
        elif self.per is None:
            raise ValueError("needs per: a duration such as 1m, or day or month")
        if self.clamp_max_tokens and given[0] not in ("tokens", "output_tokens", "usd"):
            raise ValueError("clamp_max_tokens applies to tokens, output_tokens and usd limits")
        if self.tool is not None and given[0] not in ("tool_calls", "concurrent"):
            raise ValueError("tool applies to tool_calls and concurrent limits")
        if self.tool is not None and self.model is not None:
            raise ValueError("a limit counts a model's calls or a tool's, not both")
        return self


def _instant(value: object) -> object:
    """An instant written as text (quoted in YAML, or in JSON) is read as ISO 8601."""
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 instant such as 2026-12-05T00:00:00Z") from None
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_instant)]


class ValidityMixin(Strict):
    not_before: Instant | None = None
    """Not accepted before this instant (ISO 8601 with its offset: `2026-12-05T00:00:00Z`)."""
    expires_at: Instant | None = None
    """Refused from this instant on, with `key_expired`."""

    @model_validator(mode="after")
    def _check_window(self) -> ValidityMixin:
        if self.not_before and self.expires_at and self.expires_at <= self.not_before:
            raise ValueError("expires_at must be after not_before")
        return self


class DigestSpec(ValidityMixin):
    """One key of an entry: several live side by side during a rotation."""

    sha256: Digest


class KeySpec(ValidityMixin):
    """A caller, known by its key's digest. Its window (`not_before`, `expires_at`) bounds
    every digest's own."""

    id: Name
    sha256: Digest | None = None
    """The SHA-256 of the key (`extproc keys hash`) …"""
    digests: list[DigestSpec] = Field(default_factory=list)
    """… or several, each with its own window: a rotation keeps the old key valid until its
    `expires_at` beside the new one (`extproc keys rotate`)."""
    models: list[str] = Field(min_length=1)
    """Aliases this key may use; `"*"` allows every model."""
    team: Name | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    limits: list[LimitSpec] = Field(default_factory=list)
    guardrails: list[Name] = Field(default_factory=list)
    """Policies under `guardrails` that apply to this key's calls."""
    mcp: McpGrants = Field(default_factory=dict)
    """MCP servers this key may use, with the tools it may call."""
    expose_cost: bool = False
    """Answers to this key carry what each call cost (`spend.expose_cost` for every key)."""

    @model_validator(mode="after")
    def _check_digests(self) -> KeySpec:
        if (self.sha256 is None) == (not self.digests):
            raise ValueError("give the key's sha256, or its digests (not both)")
        return self

    def all_digests(self) -> list[DigestSpec]:
        if self.sha256 is not None:
            return [DigestSpec(sha256=self.sha256)]
        return self.digests


class TeamSpec(Strict):
    limits: list[LimitSpec] = Field(default_factory=list)
    """Shared by every key of the team."""
    guardrails: list[Name] = Field(default_factory=list)
    """Policies under `guardrails` that apply to every call of the team's members."""


BuiltinDetector = Literal[
    "email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "credentials"
]


def _off_as_text(value: object) -> object:
    """YAML reads an unquoted `off` as false; here it means the word."""
    return "off" if value is False else value


GuardAction = Annotated[Literal["block", "mask", "log", "off"], BeforeValidator(_off_as_text)]


class PatternSpec(Strict):
    """A detector of the configuration's own: a regular expression."""

    regex: str
    max_length: int = Field(default=256, ge=1, le=16384)
    """The longest text a match can span: how much of a stream may be held back for it."""
    placeholder: str | None = None
    """What a masked match becomes; default `[NAME]` (the pattern's name, upper case)."""


class ExternalCheckSpec(Strict):
    """An HTTP endpoint that judges texts, with OpenAI's moderation request and answer
    (`POST {"input": [...]}` → `{"results": [{"flagged": …}]}`)."""

    url: str
    api_key: str | None = None
    """Sent as `Authorization: Bearer …`; a reference, `${env:NAME}` or `${file:path}`."""
    model: str | None = None
    timeout: Seconds = 2.0
    on_error: Literal["allow", "deny"] = "deny"
    """When the endpoint fails or is late: let the text pass, or block it."""
    name: Name = "external"
    """The detector's name in decisions, metrics and errors."""

    @model_validator(mode="after")
    def _check_url(self) -> ExternalCheckSpec:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return self


class GuardrailSpec(Strict):
    """One policy: what to look for, and what to do on finding it in requests (`input`) and
    in answers (`output`): `block`, `mask` (replace each match by a placeholder), `log`
    (count and trace only) or `off`."""

    detectors: list[BuiltinDetector] = Field(default_factory=list)
    patterns: dict[Name, PatternSpec] = Field(default_factory=dict)
    deny: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    """Words or phrases, matched whole and whatever their case."""
    external: ExternalCheckSpec | None = None
    input: GuardAction = "block"
    output: GuardAction = "block"

    @model_validator(mode="after")
    def _check_form(self) -> GuardrailSpec:
        if not (self.detectors or self.patterns or self.deny or self.external):
            raise ValueError("name at least one of detectors, patterns, deny or external")
        return self


class QuotaSpec(Strict):
    store: str = "memory"
    """Or a reference, `${env:NAME}`, so one file serves deployments with different stores."""
    """`memory` (one process) or `redis://host:port/db` (`rediss://` for TLS), shared."""
    password: str | None = None
    """The Redis password, by reference: `${env:NAME}` or `${file:path}`."""
    on_store_error: Literal["deny", "allow"] = "deny"
    """When the store cannot be reached: refuse with 503, or serve without counting."""
    timeout: Seconds = 0.25
    """How long one store operation may take before it counts as a store error."""
    default_max_output_tokens: int = Field(default=4096, ge=1)
    """The completion size reserved when neither the request nor the model sets one."""

    @model_validator(mode="after")
    def _check_store(self) -> QuotaSpec:
        if not REFERENCE.match(self.store) and (problem := store_problem(self.store)):
            raise ValueError(problem)
        return self


def store_problem(store: str) -> str | None:
    """What is wrong with a quota store setting, if anything."""
    if store == "memory":
        return None
    if not store.startswith(("redis://", "rediss://", "unix://")):
        return "store must be memory or a redis:// URL"
    if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", store):
        return "put the Redis password in quota.password as ${env:NAME}, not in the URL"
    return None


def _check_patterns(values: list[str]) -> list[str]:
    for value in values:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
    return values


def _switch_as_text(value: object) -> object:
    """YAML reads an unquoted `off`/`on` as a boolean; here it means the word."""
    if isinstance(value, bool):
        return "stdout" if value else "off"
    return value


class TracingSpec(Strict):
    enabled: bool = False
    endpoint: str | None = None
    """OTLP/gRPC collector, e.g. `http://otel-collector:4317`; unset: the processor follows
    `OTEL_EXPORTER_OTLP_ENDPOINT` and Envoy's configuration is rendered with it (default
    `http://127.0.0.1:4317`)."""
    sampling: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces sampled (a request without a sampled parent); a child of a sampled
    parent is always traced. The processor decides (Envoy, with `envoy_spans`)."""
    service_name: str = "extproc-gateway"
    record_content: bool = False
    """Record prompts and completions on spans (off: they never leave the gateway)."""
    redact: Annotated[list[str], AfterValidator(_check_patterns)] = Field(default_factory=list)
    """Regular expressions whose matches are replaced in recorded content."""
    envoy_spans: bool = False
    """Envoy's tracer also records its own spans (the request's, each ext_proc call's), and
    the processor's continue them. Off, the processor's span records the hop alone, under the
    client's `traceparent`: Envoy's tracer costs Envoy ~30 us of CPU a call it does not
    sample and ~60 us a call it does."""


class MetricsSpec(Strict):
    prometheus_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve `/metrics` on this port (worker i on port+i); unset: no endpoint."""
    prometheus_address: str = "127.0.0.1"
    otlp: bool = False
    """Also push metrics to the tracing collector over OTLP."""
    export_interval: Seconds = 15.0


class TelemetrySpec(Strict):
    tracing: TracingSpec = Field(default_factory=TracingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    access_log: Annotated[str, BeforeValidator(_switch_as_text)] = "stdout"
    """`stdout`, `stderr`, `off`, or a file path: one JSON line per request."""
    envoy_access_log: Annotated[str, BeforeValidator(_switch_as_text)] = "off"
    """Envoy's own access log, the same choices: one JSON line per request with the usage
    and cost the processor settled (`%DYNAMIC_METADATA(extproc:cost_usd)%`)."""


class JwtIssuerSpec(Strict):
    """A token issuer whose tokens Envoy verifies (its `jwt_authn` filter). The processor
    reads only the claims of tokens Envoy verified."""

    issuer: str
    """The token's `iss`."""
    audiences: list[str] = Field(min_length=1)
    """The token's `aud` must name one of these."""
    jwks_uri: str | None = None
    """Where Envoy fetches the issuer's public keys (https), cached for `jwks_cache` …"""
    jwks_file: str | None = None
    """… or a local JWKS file (relative to the configuration file). Neither: the mesh in
    front verifies the tokens (Istio `RequestAuthentication`, Envoy Gateway `SecurityPolicy`)
    and the processor reads its verdict."""
    jwks_cache: Seconds = 600.0
    clock_skew: Seconds = 60.0
    """Leeway on `exp` and `nbf`."""

    @model_validator(mode="after")
    def _check_keys(self) -> JwtIssuerSpec:
        if self.jwks_uri is not None and self.jwks_file is not None:
            raise ValueError("give jwks_uri or jwks_file, not both")
        if self.jwks_uri is not None and not self.jwks_uri.startswith(("https://", "http://")):
            raise ValueError("jwks_uri must be an http(s) URL")
        return self


class JwtMatchSpec(Strict):
    issuer: Name
    """A name under `identity.jwt`."""
    claims: dict[str, str | list[str]] = Field(default_factory=dict)
    """Each claim must equal the value (any of the values in a list); a claim that is a list
    (`groups`) must contain it."""


class AuthzMatchSpec(Strict):
    claims: dict[str, str | list[str]] = Field(default_factory=dict)
    """Fields of the authorization service's metadata, matched as a token's claims are."""


class IdentityRuleSpec(Strict):
    """Who a verified identity is, and what it may do — what a key entry says of a key."""

    name: Name
    jwt: JwtMatchSpec | None = None
    """Callers with a token from this issuer, and these claims …"""
    spiffe: str | None = None
    """… or with this SPIFFE ID (`*` matches within a path segment, a final `/*` any rest:
    `spiffe://cluster.local/ns/search/*`) …"""
    ext_authz: AuthzMatchSpec | None = None
    """… or whom the external authorization service vouched for, with these fields."""
    principal: str | None = None
    """Who the caller is, in logs and per-subject counters: a template over the claims
    (`user:{sub}`); default `{sub}` for tokens and authorization metadata, `{spiffe}` for
    SPIFFE IDs."""
    team: str | None = None
    """A team (its limits apply), literally or as a template: `{groups[0]}`."""
    models: list[str] = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    limits: list[LimitSpec] = Field(default_factory=list)
    guardrails: list[Name] = Field(default_factory=list)
    """Policies under `guardrails` that apply to the calls of everyone the rule matches."""
    mcp: McpGrants = Field(default_factory=dict)
    """MCP servers everyone the rule matches may use, with the tools they may call."""

    @model_validator(mode="after")
    def _check_source(self) -> IdentityRuleSpec:
        sources = [self.jwt, self.spiffe, self.ext_authz]
        if sum(source is not None for source in sources) != 1:
            raise ValueError("match on one of jwt, spiffe or ext_authz")
        return self


class ExtAuthzSpec(Strict):
    """An external authorization service (Envoy's `ext_authz` filter, gRPC) that Envoy asks
    before the processor: it may refuse a request, and vouch for its caller with metadata."""

    address: str
    """`host:port` of its gRPC service."""
    timeout: Seconds = 1.0
    """A service slower than this fails the request (403), never lets it through."""

    @model_validator(mode="after")
    def _check_address(self) -> ExtAuthzSpec:
        if parse_grpc_address(self.address).socket_path is not None:
            raise ValueError("address must be host:port")
        return self


class IdentitySpec(Strict):
    jwt: dict[Name, JwtIssuerSpec] = Field(default_factory=dict)
    """Issuers whose tokens identify callers (`Authorization: Bearer <JWT>`)."""
    ext_authz: ExtAuthzSpec | None = None
    """Rendered into Envoy's configuration. Under Envoy Gateway (`SecurityPolicy.extAuth`) or
    Istio leave it out: rules on `ext_authz` read what the mesh's filter wrote."""
    xfcc_from_trusted_hop: bool = False
    """The proxy in front of Envoy (an Istio sidecar) terminates mTLS and says who the peer
    was in `x-forwarded-client-cert`: read the SPIFFE ID from it. Otherwise a client-sent
    `x-forwarded-client-cert` is removed."""
    rules: list[IdentityRuleSpec] = Field(default_factory=list)
    """Checked in order; the first that matches decides. A verified identity no rule matches
    gets 403."""


class McpServerSpec(Strict):
    """An MCP server reached over the Streamable HTTP transport, exposed at `/mcp/<name>`."""

    url: str
    """Its MCP endpoint, e.g. `https://mcp.example.com/mcp`."""
    credential: str | None = None
    """Sent as `Authorization: Bearer …`: a reference, `${env:NAME}` or `${file:path}`; unset:
    no credential."""
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    """Fixed headers on every request to it."""
    timeout: Seconds = 300.0
    """Upper bound on one answer (an SSE stream of a long tool call included)."""
    connect_timeout: Seconds = 5.0
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt"

    @model_validator(mode="after")
    def _check_url(self) -> McpServerSpec:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return self


class SpendLedgerSpec(Strict):
    """Where every settled call is recorded, one row each."""

    store: str = "sqlite:spend.db"
    """`sqlite:<path>` (relative to the working directory) or `postgresql://…`; or a
    reference, `${env:NAME}`, since a PostgreSQL URL carries its password."""
    journal: str | None = None
    """The directory rows wait in until the store has them (default: under the system's
    temporary directory, one per store)."""
    retention: Seconds = 400 * 86400.0
    """Rows older than this are deleted."""
    max_backlog: Bytes = 256 * 1024 * 1024
    """Journal bytes a process keeps for a store that does not take them; beyond, rows are
    dropped (counted and logged)."""

    @model_validator(mode="after")
    def _check_store(self) -> SpendLedgerSpec:
        if not REFERENCE.match(self.store) and (problem := ledger_store_problem(self.store)):
            raise ValueError(problem)
        return self


def ledger_store_problem(store: str) -> str | None:
    if store.startswith(("postgresql://", "postgres://")):
        return None
    if store.startswith("sqlite:") and len(store) > len("sqlite:"):
        return None
    return "store must be sqlite:<path> or a postgresql:// URL"


class SpendAlertsSpec(Strict):
    """A webhook told once when a money or token limit's counter crosses each threshold in a
    window."""

    url: str
    """The webhook; a reference (`${env:NAME}`) when it carries a token."""
    thresholds: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=lambda: [50.0, 80.0, 100.0], min_length=1
    )
    """Percentages of the limit."""
    timeout: Seconds = 5.0

    @model_validator(mode="after")
    def _check_url(self) -> SpendAlertsSpec:
        if not REFERENCE.match(self.url) and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL or a reference")
        return self


class SpendSpec(Strict):
    expose_cost: bool = False
    """Every answer carries what its call cost (keys opt in one by one with `expose_cost`)."""
    ledger: SpendLedgerSpec | None = None
    """Unset: no ledger."""
    alerts: SpendAlertsSpec | None = None


class GatewaySpec(Strict):
    version: Literal[1] = 1
    listen: ListenSpec = Field(default_factory=ListenSpec)
    processor: ProcessorSpec = Field(default_factory=ProcessorSpec)
    providers: dict[Name, ProviderSpec] = Field(min_length=1)
    models: dict[Name, ModelSpec] = Field(min_length=1)
    keys: list[KeySpec] = Field(default_factory=list)
    key_files: str | None = None
    """A directory with one file per key (its entry as under `keys`, named by its id), e.g. a
    mounted Kubernetes Secret: followed live, so issuing or revoking a key edits no config."""
    key_expiry_notice: Seconds = 7 * 86400.0
    """Answers to a key expiring within this carry `x-extproc-key-expires-at`."""
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    teams: dict[Name, TeamSpec] = Field(default_factory=dict)
    guardrails: dict[Name, GuardrailSpec] = Field(default_factory=dict)
    """Policies, by name; keys, teams, identity rules and models name the ones that apply."""
    mcp_servers: dict[Name, McpServerSpec] = Field(default_factory=dict)
    """MCP servers behind the gateway, by name (`/mcp/<name>`); keys and identity rules say
    which of their tools a caller may use (`mcp`)."""
    prices: dict[Name, PriceSpec] = Field(default_factory=dict)
    """By model alias."""
    quota: QuotaSpec = Field(default_factory=QuotaSpec)
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec)
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    spend: SpendSpec = Field(default_factory=SpendSpec)
