"""The headers of a request to a provider, and of the answer a client gets: allow-lists.

A provider gets what its API needs — the gateway's credential, version and account headers,
the body's framing — plus `accept`, its feature headers (betas) when the client speaks its
schema, the headers the configuration forwards to it and the target's fixed ones; the
gateway's user agent stands for the client's (which `routing.client_user_agent: append`
adds after it). Everything else the client sent stays behind: its cookies, forwarded
addresses, its own organization or project, internal `x-*` headers, another schema's betas.

An answer keeps its content headers and `retry-after`; the provider's id for the call comes
as `x-request-id`, whatever the provider named it. Its account, its limits and its cookies
stay behind. The gateway's own headers (rate limits, errors) are added by the response path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from extproc.config import ModelRoute, Target
from extproc.contract import route_value
from extproc.headers import (
    ACCEPT_ENCODING,
    ANSWER_REQUEST_ID,
    CONTENT_LENGTH,
    CONTENT_TYPE,
    HOP_BY_HOP,
    KEPT_FROM_CLIENTS,
    KEPT_FROM_PROVIDERS,
    LEFT_TO_ENVOY,
    PATH,
    ROUTE,
    USER_AGENT,
)
from extproc.providers import REQUEST_ID_HEADERS, Location, provider_api
from extproc.translators.schema import WireSchema


def _gateway_agent() -> str:
    try:
        return f"extproc-gateway/{version('extproc-gateway')}"
    except PackageNotFoundError:  # run from a tree that was never installed
        return "extproc-gateway"


GATEWAY_AGENT = _gateway_agent()

Headers = Sequence[tuple[str, str]]


def kept_for(target: Target, *, same_schema: bool) -> frozenset[str]:
    """The client headers a request to `target` keeps (`same_schema`: the client speaks the
    provider's schema, so the provider's feature headers are meant for it)."""
    features = provider_api(target.provider).feature_headers if same_schema else frozenset()
    return KEPT_FROM_CLIENTS | target.provider.forward_headers | features


def to_provider(
    present: Iterable[str],
    target: Target,
    location: Location,
    payload: bytes | None,
    *,
    same_schema: bool,
    client_agent: str | None,
    route: str | None = None,
) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers to set, and those to remove, for a request to `target` at `location`,
    whichever stream prepares it (the request's own, or one attempt of a call with fallback):
    the path, the credentials (a signature covers `payload`), the framing of `payload` (None:
    the body passes as the client sent it), answers asked uncompressed (Envoy compresses them
    again for clients that accept it), the target's fixed headers and the user agent (the
    client's after the gateway's when `client_agent` is given); `route`: where Envoy sends
    it (None: already routed). Any other `present` header the allow-list does not keep goes:
    on an attempt, that includes an earlier attempt's provider headers, its key above all."""
    setting = [*location.headers, (PATH, location.path), (ACCEPT_ENCODING, "identity")]
    if route is not None:
        setting.append((ROUTE, route))
    if payload is not None:
        setting += [
            (CONTENT_TYPE, "application/json"),
            (CONTENT_LENGTH, str(len(payload))),
            *provider_api(target.provider).signature(target, location.path, payload),
        ]
    agent = GATEWAY_AGENT if not client_agent else f"{GATEWAY_AGENT} {client_agent}"
    headers = [*setting, *target.headers, (USER_AGENT, agent)]
    return headers, removed(present, kept_for(target, same_schema=same_schema), headers)


def to_alias(
    present: Iterable[str], route: ModelRoute, client: WireSchema, payload: bytes, *, start: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers to set, and those to remove, for a call to an alias with fallback as the
    request's own stream sends it on: routed to the alias from its `start`th level, the body
    `payload`, answers asked uncompressed, and of the client's headers those that any of its
    targets may get (each attempt then keeps what its own target may: see `to_provider`)."""
    setting = [
        (ROUTE, route_value(route.alias, start)),
        (CONTENT_LENGTH, str(len(payload))),
        (ACCEPT_ENCODING, "identity"),
    ]
    return setting, removed(present, _kept_by_any(route, client), setting)


def held_back(
    client_headers: Mapping[str, Sequence[str]],
    route: ModelRoute,
    client: WireSchema,
    removing: Collection[str],
) -> dict[str, str]:
    """Of the client's headers `removing` takes off a request prepared for one of the alias's
    targets, those another target may get (for an attempt there to set again)."""
    kept = _kept_by_any(route, client)
    return {
        name: ",".join(client_headers[name])
        for name in removing
        if name in kept and name != USER_AGENT and name in client_headers
    }


def _kept_by_any(route: ModelRoute, client: WireSchema) -> set[str]:
    return {USER_AGENT}.union(
        *(
            kept_for(target, same_schema=provider_api(target.provider).schema is client)
            for target in route.targets
        )
    )


def removed(present: Iterable[str], kept: Collection[str], setting: Headers) -> list[str]:
    """The `present` request headers that go: neither kept, nor set anew (a header set is not
    removed after), nor Envoy's to manage (pseudo-headers, `LEFT_TO_ENVOY`)."""
    set_names = {name for name, _ in setting}
    return [
        name
        for name in present
        if name not in kept
        and name not in set_names
        and name not in LEFT_TO_ENVOY
        and not name.startswith(":")
    ]


def from_provider(
    answer: Mapping[str, Sequence[str]], setting: Headers
) -> tuple[list[tuple[str, str]], list[str], str | None]:
    """For a provider's answer headers: the headers to add (the provider's request id under
    one name), those to remove, and that id. `setting`: what the gateway sets on the answer
    anyway (kept)."""
    request_id = next(
        (values[0] for name in REQUEST_ID_HEADERS if (values := answer.get(name))), None
    )
    add = [(ANSWER_REQUEST_ID, request_id)] if request_id else []
    set_names = {name for name, _ in (*setting, *add)}
    remove = [
        name
        for name in answer
        if name not in KEPT_FROM_PROVIDERS
        and name not in set_names
        and name not in HOP_BY_HOP
        and not name.startswith(":")
    ]
    return add, remove, request_id
