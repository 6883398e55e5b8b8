"""Loading: YAML text → validated file format → compiled runtime `Gateway`.

Every problem is reported with the file, the path in the document and what is wrong, and
all problems are reported at once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from extproc.config.callers import compile_callers
from extproc.config.documents import describe, read_yaml
from extproc.config.guardrail_rules import compile_guardrails
from extproc.config.key_files import read_key_files
from extproc.config.mcp_servers import compile_mcp_servers
from extproc.config.model import (
    Gateway,
    ListenSettings,
    ListenTls,
    MetricsSettings,
    ModelRoute,
    ProcessorSettings,
    ProcessorTls,
    Provider,
    QuotaSettings,
    RetrySettings,
    Target,
    TelemetrySettings,
    TracingSettings,
)
from extproc.config.schema import (
    RETRY_OUTCOMES,
    BackoffSpec,
    GatewaySpec,
    KeySpec,
    ListenSpec,
    PriceSpec,
    ProcessorSpec,
    ProviderSpec,
    QuotaSpec,
    RetrySpec,
    TelemetrySpec,
    TracingSpec,
    store_problem,
)
from extproc.config.secrets import REFERENCE, Secret, resolve_secret
from extproc.config.spend import compile_spend
from extproc.credentials.aws import AwsCredentials
from extproc.credentials.gcp import GcpCredentials
from extproc.quota.limits import Price


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists (path in document, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path or '(top level)'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def load_gateway(
    path: str | Path, environ: Mapping[str, str] | None = None, *, resolve_secrets: bool = True
) -> Gateway:
    """Read and compile a configuration file; raises ConfigError.

    `resolve_secrets=False` leaves out what comes from secrets — provider keys, and the keys
    in `key_files` (a mounted Secret) — for work that needs neither (rendering Envoy's
    configuration, probes).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [("", f"cannot read: {error}")]) from None
    environ = os.environ if environ is None else environ
    return parse_gateway(text, source=path, environ=environ, resolve_secrets=resolve_secrets)


def parse_gateway(
    text: str, *, source: Path, environ: Mapping[str, str], resolve_secrets: bool = True
) -> Gateway:
    """Compile configuration text; relative `${file:…}` references resolve beside `source`."""
    spec = _validated(text, str(source))
    problems: list[tuple[str, str]] = []
    gateway = _compile(spec, source, environ if resolve_secrets else None, problems)
    if problems:
        raise ConfigError(str(source), problems)
    return gateway


def load_key_entries(path: Path) -> tuple[GatewaySpec, list[tuple[str, KeySpec]]]:
    """The file format of the configuration at `path`, and every key entry with where it is
    written (`keys.N`, `key_files/NAME`); raises ConfigError."""
    try:
        spec = _validated(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [("", f"cannot read: {error}")]) from None
    keys, problems = _key_entries(spec, path)
    if problems:
        raise ConfigError(str(path), problems)
    return spec, keys


def _validated(text: str, name: str) -> GatewaySpec:
    try:
        document = read_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(name, [("", f"not valid YAML: {error}")]) from None
    if not isinstance(document, dict):
        raise ConfigError(name, [("", "the document must be a mapping")])
    try:
        return GatewaySpec.model_validate(document)
    except ValidationError as error:
        raise ConfigError(name, [describe(item) for item in error.errors()]) from None


def _key_entries(
    spec: GatewaySpec, source: Path, *, with_files: bool = True
) -> tuple[list[tuple[str, KeySpec]], list[tuple[str, str]]]:
    keys = [(f"keys.{index}", key) for index, key in enumerate(spec.keys)]
    if spec.key_files is None or not with_files:
        return keys, []
    from_files, problems = read_key_files(source.parent / spec.key_files)
    return keys + from_files, problems


def _compile(
    spec: GatewaySpec,
    source: Path,
    environ: Mapping[str, str] | None,
    problems: list[tuple[str, str]],
) -> Gateway:
    providers = {
        name: _compile_provider(name, provider, source.parent, environ, problems)
        for name, provider in spec.providers.items()
    }
    for alias in spec.prices:
        if alias not in spec.models:
            problems.append((f"prices.{alias}", f"unknown model {alias!r}"))
    prices = {alias: _price(price) for alias, price in spec.prices.items()}
    models: dict[str, ModelRoute] = {}
    for alias, model in spec.models.items():
        targets = []
        for index, target in enumerate(model.all_targets()):
            provider = providers.get(target.provider)
            if provider is None:
                where = f"models.{alias}." + (f"targets.{index}." if model.targets else "")
                known = ", ".join(sorted(providers))
                problems.append(
                    (where + "provider", f"unknown provider {target.provider!r} (known: {known})")
                )
                continue
            own_price = _price(target.price) if target.price else None
            targets.append(
                Target(
                    provider,
                    target.model,
                    target.weight,
                    target.options,
                    target.priority,
                    own_price or prices.get(alias),
                    tuple(target.headers.items()),
                    model.reasoning,
                )
            )
        weights = tuple(itertools.accumulate(t.weight for t in targets))
        models[alias] = ModelRoute(
            alias,
            tuple(targets),
            weights,
            model.max_output_tokens,
            _retry(model.retry, spec.routing.retry, targets),
            tuple(model.guardrails),
        )

    keys, key_problems = _key_entries(spec, source, with_files=environ is not None)
    problems += key_problems
    principals, identity = compile_callers(spec, keys, models, source.parent, problems)
    guardrails = compile_guardrails(spec, keys, source.parent, environ, problems)
    mcp_servers = compile_mcp_servers(spec, keys, source.parent, environ, problems)
    quota = _compile_quota(spec.quota, source.parent, environ, problems)
    spend = compile_spend(spec.spend, source.parent, environ, problems)
    return Gateway(
        source,
        _listen(spec.listen, source.parent),
        _processor(spec.processor, source.parent),
        providers,
        models,
        principals,
        quota,
        _telemetry(spec.telemetry),
        key_files=source.parent / spec.key_files if spec.key_files is not None else None,
        identity=identity,
        key_expiry_notice=spec.key_expiry_notice,
        expose_provider=spec.routing.expose_provider,
        client_user_agent=spec.routing.client_user_agent,
        guardrails=guardrails,
        mcp_servers=mcp_servers,
        spend=spend,
    )


def _listen(spec: ListenSpec, directory: Path) -> ListenSettings:
    tls = None
    if spec.tls is not None:
        client_ca = spec.tls.client_ca_file
        tls = ListenTls(
            directory / spec.tls.cert_file,
            directory / spec.tls.key_file,
            directory / client_ca if client_ca is not None else None,
        )
    return ListenSettings(**spec.model_dump(exclude={"tls"}), tls=tls)


def _processor(spec: ProcessorSpec, directory: Path) -> ProcessorSettings:
    tls = None
    if spec.tls is not None:
        files = {
            name: directory / value if name.endswith("_file") else value
            for name, value in spec.tls.model_dump().items()
        }
        tls = ProcessorTls(**files)
    return ProcessorSettings(
        spec.address, spec.workers, spec.message_timeout, tls, spec.allow_plaintext
    )


def _telemetry(spec: TelemetrySpec) -> TelemetrySettings:
    return TelemetrySettings(
        compile_tracing(spec.tracing),
        MetricsSettings(**spec.metrics.model_dump()),
        spec.access_log,
        spec.envoy_access_log,
    )


def compile_tracing(spec: TracingSpec) -> TracingSettings:
    fields = spec.model_dump()
    return TracingSettings(**fields | {"redact": tuple(fields["redact"])})


def _retry(
    own: RetrySpec | None, default: RetrySpec, targets: list[Target]
) -> RetrySettings | None:
    """The alias's retry settings: its own fields, else `routing.retry`'s, else one attempt
    per priority level on every outcome. None (one attempt, no retry) for a single priority
    level when nothing asks for retries."""
    layers = [spec for spec in (own, default) if spec is not None]
    levels = len({target.priority for target in targets})
    if levels <= 1 and not any(spec.model_fields_set for spec in layers):
        return None

    def first(name: str) -> Any:
        return next((getattr(s, name) for s in layers if getattr(s, name) is not None), None)

    backoff = first("backoff") or BackoffSpec()
    return RetrySettings(
        on=tuple(first("retry_on") or RETRY_OUTCOMES),
        attempts=first("attempts") or levels,
        per_attempt_timeout=first("per_attempt_timeout")
        or max((target.provider.timeout for target in targets), default=0.0),
        backoff_base=backoff.base,
        backoff_max=backoff.max,
    )


def _compile_quota(
    spec: QuotaSpec,
    base_dir: Path,
    environ: Mapping[str, str] | None,
    problems: list[tuple[str, str]],
) -> QuotaSettings:
    store = spec.store
    if REFERENCE.match(store) and environ is not None:
        try:
            store = resolve_secret(store, base_dir=base_dir, environ=environ).reveal()
        except ValueError as error:
            problems.append(("quota.store", str(error)))
        else:
            if problem := store_problem(store):
                problems.append(("quota.store", problem))
    password: Secret | None = None
    if spec.password is not None and environ is not None:
        try:
            password = resolve_secret(spec.password, base_dir=base_dir, environ=environ)
        except ValueError as error:
            problems.append(("quota.password", str(error)))
    return QuotaSettings(
        store=store,
        password=password,
        on_store_error=spec.on_store_error,
        timeout=spec.timeout,
        default_max_output_tokens=spec.default_max_output_tokens,
    )


def _compile_provider(
    name: str,
    spec: ProviderSpec,
    base_dir: Path,
    environ: Mapping[str, str] | None,
    problems: list[tuple[str, str]],
) -> Provider:
    base_url = spec.base_url or _default_base_url(spec)
    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        problems.append((f"providers.{name}.base_url", "must be an http:// or https:// URL"))
    if url.query or url.fragment:
        problems.append((f"providers.{name}.base_url", "must not have a query or fragment"))
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        problems.append((f"providers.{name}.base_url", "has an invalid port"))
        port = 0
    api_key = None
    if spec.api_key is not None and environ is not None:
        try:
            api_key = resolve_secret(spec.api_key, base_dir=base_dir, environ=environ)
        except ValueError as error:
            problems.append((f"providers.{name}.api_key", str(error)))
    gcp = None
    if spec.kind == "vertex" and environ is not None:
        try:
            gcp = GcpCredentials.from_adc()
        except ValueError as error:
            problems.append((f"providers.{name}", f"Google Cloud credentials: {error}"))
    aws = None
    if spec.kind == "bedrock" and environ is not None:
        try:
            aws = AwsCredentials.from_chain(spec.aws_profile)
        except ValueError as error:
            problems.append((f"providers.{name}", f"AWS credentials: {error}"))
    return Provider(
        name=name,
        kind=spec.kind,
        scheme=url.scheme,
        host=url.hostname or "",
        port=port,
        base_path=url.path.rstrip("/"),
        api_key=api_key,
        api_version=spec.api_version,
        anthropic_version=spec.anthropic_version,
        timeout=spec.timeout,
        connect_timeout=spec.connect_timeout,
        max_concurrent_requests=spec.max_concurrent_requests,
        idle_timeout=spec.idle_timeout,
        ca_file=spec.ca_file,
        stream_usage=spec.stream_usage,
        responses_api=spec.responses_api,
        region=spec.region,
        aws=aws,
        project=spec.project,
        organization=spec.organization,
        forward_headers=frozenset(spec.forward_headers),
        location=spec.location,
        publisher=spec.publisher,
        gcp=gcp,
    )


def _default_base_url(spec: ProviderSpec) -> str:
    """Bedrock's and Vertex AI's regional endpoints."""
    if spec.kind == "vertex":
        prefix = "" if spec.location == "global" else f"{spec.location}-"
        return f"https://{prefix}aiplatform.googleapis.com"
    return f"https://bedrock-runtime.{spec.region}.amazonaws.com"


def _price(spec: PriceSpec) -> Price:
    return Price(
        spec.input_per_million,
        spec.output_per_million,
        cached_input_per_million=spec.cached_input_per_million,
        cache_write_per_million=spec.cache_write_per_million,
    )
