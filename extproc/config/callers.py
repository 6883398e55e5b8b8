"""Who may call, compiled: key entries into principals by digest, identity rules into the
rules the processor matches verified identities against, and the teams both belong to."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from extproc.config.claim_template import ClaimTemplate
from extproc.config.limit_rules import compile_limits
from extproc.config.model import (
    ExtAuthz,
    IdentityRule,
    IdentitySettings,
    JwtIssuer,
    McpGrant,
    ModelRoute,
    Principal,
    ServerGrant,
)
from extproc.config.schema import GatewaySpec, IdentityRuleSpec, KeySpec, McpGrantSpec
from extproc.quota.limits import Limit

DIGEST_TAKEN = "this digest is already given (a key is known by its digest alone)"
SPIFFE_SUBJECT = "spiffe"
"""The `per_subject` value that splits a limit by SPIFFE ID."""

Problems = list[tuple[str, str]]


def compile_callers(
    spec: GatewaySpec,
    keys: list[tuple[str, KeySpec]],
    models: Mapping[str, ModelRoute],
    directory: Path,
    problems: Problems,
) -> tuple[dict[str, Principal], IdentitySettings]:
    """Principals by key digest (`keys`: where each entry is written, and the entry), and
    the identity settings."""
    team_limits = _team_limits(spec, keys, models, problems)
    team_guardrails = {team: tuple(entry.guardrails) for team, entry in spec.teams.items()}
    principals = _principals(keys, models, team_limits, team_guardrails, problems)
    rules = tuple(
        rule
        for index, rule_spec in enumerate(spec.identity.rules)
        if (rule := _rule(spec, rule_spec, f"identity.rules.{index}", models, problems))
    )
    limited = any(team.limits for team in spec.teams.values())
    limited = limited or any(key.limits for _, key in keys)
    limited = limited or any(rule.limits for rule in spec.identity.rules)
    if limited and spec.quota.store == "memory" and spec.processor.workers > 1:
        problems.append(
            (
                "quota.store",
                "memory counts per process; with processor.workers above 1 use a redis:// "
                "store so the workers share counters",
            )
        )
    issuers = {
        name: JwtIssuer(
            name,
            issuer.issuer,
            tuple(issuer.audiences),
            issuer.jwks_uri,
            directory / issuer.jwks_file if issuer.jwks_file is not None else None,
            issuer.jwks_cache,
            issuer.clock_skew,
        )
        for name, issuer in spec.identity.jwt.items()
    }
    authz = spec.identity.ext_authz
    identity = IdentitySettings(
        issuers,
        ExtAuthz(authz.address, authz.timeout) if authz is not None else None,
        spec.identity.xfcc_from_trusted_hop,
        rules,
        team_limits,
        team_guardrails,
    )
    return principals, identity


def _team_limits(
    spec: GatewaySpec,
    keys: list[tuple[str, KeySpec]],
    models: Mapping[str, ModelRoute],
    problems: Problems,
) -> dict[str, tuple[Limit, ...]]:
    """Each team's limits, checked against the models its members may use (a rule whose
    team comes from a claim may put its callers in any team)."""
    team_models: dict[str, set[str]] = {}
    for _, key in keys:
        if key.team is not None:
            team_models.setdefault(key.team, set()).update(key.models)
    for rule in spec.identity.rules:
        if rule.team is None:
            continue
        named = [rule.team] if "{" not in rule.team else list(spec.teams)
        for team in named:
            team_models.setdefault(team, set()).update(rule.models)
    return {
        team: compile_limits(
            f"team:{team}",
            spec.teams[team].limits,
            f"teams.{team}.limits",
            allowed=team_models.get(team, set()),
            models=models,
            problems=problems,
        )
        for team in spec.teams
    }


def _principals(
    keys: list[tuple[str, KeySpec]],
    models: Mapping[str, ModelRoute],
    team_limits: Mapping[str, tuple[Limit, ...]],
    team_guardrails: Mapping[str, tuple[str, ...]],
    problems: Problems,
) -> dict[str, Principal]:
    """One principal per digest of each key, with that digest's window."""
    principals: dict[str, Principal] = {}
    seen_ids: set[str] = set()
    for where, key in keys:
        if key.id in seen_ids:
            problems.append((f"{where}.id", f"duplicate key id {key.id!r}"))
        seen_ids.add(key.id)
        _check_models(key.models, where, models, problems)
        for index, limit in enumerate(key.limits):
            if limit.per_subject is not None:
                problems.append((f"{where}.limits.{index}.per_subject", "only in identity rules"))
        limits = compile_limits(
            f"key:{key.id}",
            key.limits,
            f"{where}.limits",
            allowed=set(key.models),
            models=models,
            problems=problems,
        )
        principal = Principal(
            key_id=key.id,
            team=key.team,
            models=frozenset(key.models) - {"*"},
            all_models="*" in key.models,
            metadata=dict(key.metadata),
            limits=limits + (team_limits.get(key.team, ()) if key.team else ()),
            guardrails=_guardrails(key.guardrails, key.team, team_guardrails),
            mcp=mcp_grants(key.mcp),
            expose_cost=key.expose_cost,
        )
        for position, digest in enumerate(key.all_digests()):
            if digest.sha256 in principals:
                field = "sha256" if key.sha256 is not None else f"digests.{position}.sha256"
                problems.append((f"{where}.{field}", DIGEST_TAKEN))
            principals[digest.sha256] = replace(
                principal,
                not_before=_latest(key.not_before, digest.not_before),
                expires_at=_earliest(key.expires_at, digest.expires_at),
            )
    return principals


def _rule(
    spec: GatewaySpec,
    rule: IdentityRuleSpec,
    where: str,
    models: Mapping[str, ModelRoute],
    problems: Problems,
) -> IdentityRule | None:
    _check_models(rule.models, where, models, problems)
    if rule.jwt is not None and rule.jwt.issuer not in spec.identity.jwt:
        known = ", ".join(sorted(spec.identity.jwt)) or "none"
        problems.append((f"{where}.jwt.issuer", f"unknown issuer (known: {known})"))
    templates: dict[str, ClaimTemplate] = {}
    default = "{spiffe}" if rule.spiffe is not None else "{sub}"
    for field, text in (("principal", rule.principal or default), ("team", rule.team)):
        if text is None:
            continue
        try:
            templates[field] = ClaimTemplate.parse(text)
        except ValueError as error:
            problems.append((f"{where}.{field}", str(error)))
    team = templates.get("team")
    if team is not None and team.literal and team.text not in spec.teams:
        problems.append((f"{where}.team", f"unknown team {team.text!r}"))
    shared: list[Limit] = []
    split: list[tuple[str, Limit]] = []
    compiled = compile_limits(
        f"rule:{rule.name}",
        rule.limits,
        f"{where}.limits",
        allowed=set(rule.models),
        models=models,
        problems=problems,
    )
    for limit_spec, limit in zip(rule.limits, compiled, strict=True):
        if limit_spec.per_subject is None:
            shared.append(limit)
        else:
            split.append((limit_spec.per_subject, limit))
    spiffe = _spiffe_pattern(rule.spiffe) if rule.spiffe is not None else None
    if "principal" not in templates:
        return None
    matched = rule.jwt or rule.ext_authz
    return IdentityRule(
        name=rule.name,
        source="jwt" if rule.jwt else "spiffe" if rule.spiffe else "ext_authz",
        issuer=rule.jwt.issuer if rule.jwt is not None else None,
        claims={
            claim: frozenset([wanted] if isinstance(wanted, str) else wanted)
            for claim, wanted in (matched.claims if matched is not None else {}).items()
        },
        spiffe=spiffe,
        principal=templates["principal"],
        team=templates.get("team"),
        models=frozenset(rule.models) - {"*"},
        all_models="*" in rule.models,
        metadata=dict(rule.metadata),
        limits=tuple(shared),
        subject_limits=tuple(split),
        guardrails=tuple(rule.guardrails),
        mcp=mcp_grants(rule.mcp),
    )


def _spiffe_pattern(pattern: str) -> re.Pattern[str]:
    """`*` within a path segment; a final `/*` also matches deeper paths."""
    tail = ""
    if pattern.endswith("/*"):
        pattern, tail = pattern[:-2], "(/.*)?"
    parts = [re.escape(part) for part in pattern.split("*")]
    return re.compile("[^/]*".join(parts) + tail)


def _check_models(
    aliases: list[str], where: str, models: Mapping[str, ModelRoute], problems: Problems
) -> None:
    for position, alias in enumerate(aliases):
        if alias != "*" and alias not in models:
            problems.append((f"{where}.models.{position}", f"unknown model {alias!r}"))


def _latest(*instants: datetime.datetime | None) -> float | None:
    known = [instant.timestamp() for instant in instants if instant is not None]
    return max(known, default=None)


def _earliest(*instants: datetime.datetime | None) -> float | None:
    known = [instant.timestamp() for instant in instants if instant is not None]
    return min(known, default=None)


def _guardrails(
    own: list[str], team: str | None, team_guardrails: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """A key's policies, then its team's."""
    return tuple(own) + (team_guardrails.get(team, ()) if team is not None else ())


def mcp_grants(grant: Mapping[str, list[str] | McpGrantSpec]) -> tuple[McpGrant, ...]:
    """A key's or rule's MCP grant, as principals hold it (none: no MCP server)."""
    if not grant:
        return ()
    return (
        {
            server: ServerGrant(tuple(given))
            if isinstance(given, list)
            else ServerGrant(
                tuple(given.tools),
                tuple(given.prompts) if given.prompts is not None else None,
                tuple(given.resources) if given.resources is not None else None,
            )
            for server, given in grant.items()
        },
    )
