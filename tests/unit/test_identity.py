"""Identity pieces as plain Python: claim templates, SPIFFE patterns, reading
x-forwarded-client-cert, and rules in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc import errors
from extproc.config import ConfigError, parse_gateway
from extproc.config.claim_template import ClaimTemplate
from extproc.pipeline.identity import (
    Verified,
    peer_spiffe_id,
    principal_for,
    spiffe_claims,
    verified_identity,
)

CLAIMS = {"sub": "alice", "groups": ["ml-team", "ops"], "realm": {"roles": ["admin"]}, "n": 7.0}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("user:{sub}", "user:alice"),
        ("{groups[1]}", "ops"),
        ("{realm.roles[0]}@{sub}", "admin@alice"),
        ("{n}", "7"),
        ("{groups[5]}", None),
        ("{email}", None),
        ("fixed", "fixed"),
    ],
)
def test_templates_render_claims_or_nothing(template: str, rendered: str | None) -> None:
    assert ClaimTemplate.parse(template).render(CLAIMS) == rendered


def test_a_stray_brace_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholders look like"):
        ClaimTemplate.parse("user:{sub")


@pytest.mark.parametrize(
    ("header", "spiffe"),
    [
        ("By=spiffe://td/ns/gw/sa/e;Hash=ab;URI=spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b"),
        ('URI="spiffe://td/x";Subject="CN=a,O=b"', "spiffe://td/x"),
        ("URI=spiffe://td/first,By=x;URI=spiffe://td/nearest", "spiffe://td/nearest"),
        ("Hash=ab;Subject=CN=someone", None),
        ("URI=https://not-spiffe", None),
    ],
)
def test_the_nearest_peers_spiffe_id_is_read(header: str, spiffe: str | None) -> None:
    assert peer_spiffe_id({"x-forwarded-client-cert": [header]}) == spiffe


def test_a_kubernetes_spiffe_id_names_its_namespace_and_service_account() -> None:
    assert spiffe_claims("spiffe://cluster.local/ns/search/sa/ranker") == {
        "spiffe": "spiffe://cluster.local/ns/search/sa/ranker",
        "trust_domain": "cluster.local",
        "ns": "search",
        "sa": "ranker",
    }


RULES = """
providers:
  oai: {kind: openai, base_url: "https://api.example.com", api_key: "${env:K}"}
models:
  a: {provider: oai, model: up-a}
  b: {provider: oai, model: up-b}
identity:
  jwt:
    corp: {issuer: "https://idp", audiences: [gw], jwks_file: jwks.json}
  rules:
    - {name: admins, jwt: {issuer: corp, claims: {realm.roles: admin}}, principal: "admin:{sub}",
       models: ["*"]}
    - {name: ml, jwt: {issuer: corp, claims: {groups: [ml-team, data]}}, team: "{groups[0]}",
       models: [a], limits: [{tokens: 100, per: 1d, per_subject: email}]}
    - {name: search, spiffe: "spiffe://cluster.local/ns/search/*", principal: "{ns}/{sa}",
       models: [b]}
    - {name: one-node, spiffe: "spiffe://td/*/edge", models: [a]}
teams:
  ml-team: {limits: [{requests: 5, per: 1m}]}
"""


def test_rules_apply_in_order_and_split_limits_by_subject() -> None:
    settings = parse_gateway(RULES, source=Path("t.yaml"), environ={"K": "x"}).identity
    jwt = {"iss": "https://idp", "sub": "alice", "email": "a@x.test"}

    admin = principal_for(Verified("jwt", "corp", jwt | {"realm": {"roles": ["admin"]}}), settings)
    assert (admin.key_id, admin.all_models) == ("admin:alice", True)
    ml = principal_for(Verified("jwt", "corp", jwt | {"groups": ["ml-team"]}), settings)
    assert (ml.key_id, ml.team, ml.kind) == ("alice", "ml-team", "jwt")
    assert [limit.scope for limit in ml.limits] == ["rule:ml:email=a@x.test", "team:ml-team"]
    with pytest.raises(errors.PermissionDenied):  # the per-subject claim is missing
        principal_for(Verified("jwt", "corp", {"sub": "bob", "groups": ["data"]}), settings)
    search = principal_for(
        Verified("spiffe", "spiffe", spiffe_claims("spiffe://cluster.local/ns/search/sa/r")),
        settings,
    )
    assert search.key_id == "search/r" and search.may_use("b") and not search.may_use("a")
    assert principal_for(
        Verified("spiffe", "spiffe", spiffe_claims("spiffe://td/x/edge")), settings
    )
    with pytest.raises(errors.PermissionDenied):  # `*` stays within one segment
        principal_for(Verified("spiffe", "spiffe", spiffe_claims("spiffe://td/x/y/edge")), settings)


def test_claims_a_mesh_verified_are_read_under_its_own_key() -> None:
    """Istio files them under `payload`, Envoy Gateway under the issuer's URL: the issuer's
    `iss` tells whose they are."""
    settings = parse_gateway(RULES, source=Path("t.yaml"), environ={"K": "x"}).identity
    claims = {"iss": "https://idp", "sub": "alice", "groups": ["ml-team"], "email": "a@x"}
    for key in ("payload", "https://idp"):
        identity = verified_identity({}, {key: claims}, settings)
        assert identity == Verified("jwt", "corp", claims)
    assert verified_identity({}, {"payload": claims | {"iss": "https://other"}}, settings) is None


def test_a_token_envoy_did_not_verify_is_refused_with_its_reason() -> None:
    settings = parse_gateway(RULES, source=Path("t.yaml"), environ={"K": "x"}).identity
    headers = {"authorization": ["Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"]}
    failure = {"failure": {"code": 3.0, "message": "Jwt is expired"}}
    with pytest.raises(errors.Unauthenticated, match="Jwt is expired") as refused:
        verified_identity(headers, failure, settings)
    assert refused.value.code == "invalid_token"
    # A gateway key in the same header is no token: left to key authentication.
    assert verified_identity({"authorization": ["Bearer sk-gw-abc"]}, {}, settings) is None


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            "{name: r, models: [a]}",
            ("identity.rules.0", "match on one of jwt, spiffe or ext_authz"),
        ),
        (
            "{name: r, jwt: {issuer: nope}, models: [a]}",
            ("identity.rules.0.jwt.issuer", "unknown issuer (known: corp)"),
        ),
        (
            "{name: r, jwt: {issuer: corp}, team: ghosts, models: [a]}",
            ("identity.rules.0.team", "unknown team 'ghosts'"),
        ),
        (
            "{name: r, jwt: {issuer: corp}, principal: 'u:{sub', models: [a]}",
            (
                "identity.rules.0.principal",
                "placeholders look like {claim}, {claim[0]} or {claim.field}",
            ),
        ),
    ],
)
def test_rule_problems_are_named(rule: str, problem: tuple[str, str]) -> None:
    config = f"""
providers:
  oai: {{kind: openai, base_url: "https://api.example.com", api_key: "${{env:K}}"}}
models:
  a: {{provider: oai, model: up-a}}
identity:
  jwt:
    corp: {{issuer: "https://idp", audiences: [gw], jwks_file: jwks.json}}
  rules:
    - {rule}
"""
    with pytest.raises(ConfigError) as raised:
        parse_gateway(config, source=Path("t.yaml"), environ={"K": "x"})
    assert raised.value.problems == [problem]


def test_per_subject_limits_belong_to_identity_rules() -> None:
    config = """
providers:
  oai: {kind: openai, base_url: "https://api.example.com", api_key: "${env:K}"}
models:
  a: {provider: oai, model: up-a}
keys:
  - {id: k, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, models: [a],
     limits: [{requests: 1, per: 1d, per_subject: sub}]}
"""
    with pytest.raises(ConfigError) as raised:
        parse_gateway(config, source=Path("t.yaml"), environ={"K": "x"})
    assert raised.value.problems == [("keys.0.limits.0.per_subject", "only in identity rules")]
