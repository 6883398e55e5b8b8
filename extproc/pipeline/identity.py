"""Who is calling, from what Envoy verified — a token's claims (its `jwt_authn` filter), a
client certificate's SPIFFE ID (`x-forwarded-client-cert`, which Envoy sets from the
certificate, or keeps from the trusted hop in front; otherwise removes), what an external
authorization service vouched for (its `ext_authz` filter's metadata) — and a gateway key
beside or instead of it. Sources are checked in that order: token, SPIFFE ID, authorization
service, key.

The processor never reads a token itself. A token Envoy verified is gone from the request
(Envoy removes it) and its claims arrive as metadata under the issuer's name; a token still
in `Authorization` is one Envoy did not accept, and gets 401 with Envoy's reason. Claims in
request headers (`x-jwt-payload`, `x-user`, …) are not read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from extproc.config import Gateway, Principal
from extproc.config.claim_template import claim_value
from extproc.config.model import IdentityRule, IdentitySettings
from extproc.contract import EXT_AUTHZ_METADATA, JWT_FAILURE, JWT_METADATA
from extproc.errors import PermissionDenied, Unauthenticated
from extproc.headers import API_KEY, AUTHORIZATION, X_API_KEY, XFCC
from extproc.pipeline.auth import RequestHeaders, authenticate

ENVOYS_OWN = frozenset(("ext_authz_duration",))
"""What Envoy's ext_authz filter adds to a service's metadata: no vouching in it."""


@dataclass(frozen=True, slots=True)
class Verified:
    """An identity Envoy verified."""

    kind: str
    """`jwt` or `spiffe`."""
    source: str
    """The issuer's name under `identity.jwt`, or `spiffe`."""
    claims: Mapping[str, Any]


def identify(
    headers: RequestHeaders,
    verified: Mapping[str, Mapping[str, Any]],
    gateway: Gateway,
    now: float,
) -> Principal:
    """The caller: its gateway key's principal, its verified identity's, or both together
    (the key's limits and the identity's, the models both may use). Raises Unauthenticated
    (401) for a missing or refused credential, PermissionDenied (403) for an identity no
    rule admits."""
    identity = verified_identity(headers, verified.get(JWT_METADATA, {}), gateway.identity)
    if identity is None and (
        gateway.listen.client_certificates or gateway.identity.xfcc_from_trusted_hop
    ):
        spiffe = peer_spiffe_id(headers)
        identity = Verified("spiffe", "spiffe", spiffe_claims(spiffe)) if spiffe else None
    vouched = verified.get(EXT_AUTHZ_METADATA, {})
    if identity is None and set(vouched) - ENVOYS_OWN and gateway.identity.reads_ext_authz:
        identity = Verified("ext_authz", "ext_authz", vouched)
    if identity is None:
        return authenticate(headers, gateway.principals, now)
    person = principal_for(identity, gateway.identity)
    if not _has_key(headers):
        return person
    return _together(authenticate(headers, gateway.principals, now), person)


def verified_identity(
    headers: RequestHeaders, verified: Mapping[str, Any], settings: IdentitySettings
) -> Verified | None:
    for name, issuer in settings.jwt.items():
        claims = verified.get(name)
        if isinstance(claims, Mapping):
            return Verified("jwt", name, claims)
        # Verified by the mesh in front, which files the claims under its own key.
        for claims in verified.values():
            if isinstance(claims, Mapping) and claims.get("iss") == issuer.issuer:
                return Verified("jwt", name, claims)
    if settings.jwt and any(_looks_like_token(value) for value in headers.get(AUTHORIZATION, ())):
        failure = verified.get(JWT_FAILURE)
        reason = failure.get("message") if isinstance(failure, Mapping) else None
        raise Unauthenticated(
            f"The token was not accepted: {reason or 'its issuer is not one the gateway trusts'}.",
            code="invalid_token",
        )
    return None


def principal_for(identity: Verified, settings: IdentitySettings) -> Principal:
    """The principal the first matching rule makes of `identity`."""
    for rule in settings.rules:
        if _matches(rule, identity) and (principal := _principal(rule, identity, settings)):
            return principal
    raise PermissionDenied(
        "The caller's identity was verified, but no identity rule admits it.",
        code="identity_not_allowed",
    )


def _matches(rule: IdentityRule, identity: Verified) -> bool:
    if rule.source != identity.kind:
        return False
    if identity.kind == "spiffe":
        spiffe = identity.claims.get("spiffe")
        return (
            rule.spiffe is not None
            and isinstance(spiffe, str)
            and bool(rule.spiffe.fullmatch(spiffe))
        )
    if identity.kind == "jwt" and rule.issuer != identity.source:
        return False
    return all(
        _claim_matches(identity.claims, claim, wanted) for claim, wanted in rule.claims.items()
    )


def _claim_matches(claims: Mapping[str, Any], claim: str, wanted: frozenset[str]) -> bool:
    path = tuple(claim.split("."))
    value: Any = claims
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return False
        value = value[name]
    values = value if isinstance(value, list) else [value]
    return any(
        text in wanted
        for item in values
        if (text := claim_value({"v": item}, ("v",), None)) is not None
    )


def _principal(
    rule: IdentityRule, identity: Verified, settings: IdentitySettings
) -> Principal | None:
    """None when a claim the rule needs is missing: the rule does not apply."""
    claims = identity.claims
    name = rule.principal.render(claims)
    team = rule.team.render(claims) if rule.team is not None else None
    if name is None or (rule.team is not None and team is None):
        return None
    own = rule.limits_of(claims)
    if own is None:
        return None
    limits = own + (settings.team_limits.get(team, ()) if team is not None else ())
    team_guardrails = settings.team_guardrails.get(team, ()) if team is not None else ()
    return Principal(
        key_id=name,
        team=team,
        models=rule.models,
        all_models=rule.all_models,
        metadata=rule.metadata,
        limits=limits,
        kind=identity.kind,
        subject=name,
        guardrails=rule.guardrails + team_guardrails,
        mcp=rule.mcp,
    )


def _together(key: Principal, person: Principal) -> Principal:
    """An application's key and its end user's identity: both sets of limits, the models
    both may use, the key's id and team."""
    if key.all_models and person.all_models:
        models, everything = frozenset[str](), True
    elif key.all_models or person.all_models:
        models, everything = (person.models if key.all_models else key.models), False
    else:
        models, everything = key.models & person.models, False
    return replace(
        key,
        models=models,
        all_models=everything,
        metadata={**person.metadata, **key.metadata},
        limits=key.limits + person.limits,
        guardrails=tuple(dict.fromkeys(key.guardrails + person.guardrails)),
        mcp=key.mcp + person.mcp,  # each grant must allow a tool
        kind=f"key+{person.kind}",
        subject=person.key_id,
    )


def _has_key(headers: RequestHeaders) -> bool:
    """Some credential header with a value (an empty one is no key)."""
    names = (AUTHORIZATION, API_KEY, X_API_KEY)
    return any(value.strip() for name in names for value in headers.get(name, ()))


def _looks_like_token(value: str) -> bool:
    """`Bearer <JWT>`: three dot-separated parts, the first a base64url JSON object. Only the
    shape is looked at, to tell a refused token from a gateway key."""
    scheme, _, token = value.strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("eyJ") and token.count(".") == 2


def peer_spiffe_id(headers: RequestHeaders) -> str | None:
    """The SPIFFE ID of the nearest peer in `x-forwarded-client-cert` (its last element's
    `URI`), set by Envoy from the client's certificate or by the trusted hop in front."""
    values = headers.get(XFCC)
    if not values:
        return None
    elements = _split_outside_quotes(values[-1], ",")
    if not elements:
        return None
    for pair in _split_outside_quotes(elements[-1], ";"):
        name, _, value = pair.partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "uri" and value.startswith("spiffe://"):
            return value
    return None


def spiffe_claims(spiffe: str) -> dict[str, str]:
    """What rules and templates read of a SPIFFE ID: all of it, its trust domain, and for a
    Kubernetes workload (`/ns/<namespace>/sa/<service account>`) its `ns` and `sa`."""
    trust_domain, _, path = spiffe.removeprefix("spiffe://").partition("/")
    claims = {"spiffe": spiffe, "trust_domain": trust_domain}
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "ns" and parts[2] == "sa":
        claims |= {"ns": parts[1], "sa": parts[3]}
    return claims


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]
