"""Responses the provider stores (OpenAI's Responses API with `store` on): which alias and
provider created each, kept in the quota store so that every replica knows. A key reaches a
stored response (reading, deleting, continuing it) only when it may use that alias."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from extproc.config import ModelRoute, Principal, Target
from extproc.errors import NotFound, shorten
from extproc.pipeline.refusals import store_down
from extproc.providers import provider_api
from extproc.providers.base import RESPONSES_API
from extproc.quota.store import QuotaStore, StoreUnavailable
from extproc.translators.ir import JsonObject
from extproc.translators.responses import RESPONSES
from extproc.translators.translation import Translation

log = logging.getLogger(__name__)

RETENTION_SECONDS = 30 * 24 * 3600
"""How long OpenAI keeps a stored response."""


@dataclass(frozen=True, slots=True)
class Owner:
    alias: str
    provider: str


def stored(translation: Translation, body: JsonObject) -> bool:
    """Whether the provider keeps this call's response: a Responses call passed through as
    it is (store defaults to on)."""
    passed = translation.client is RESPONSES.client and translation.passed_through
    return passed and body.get("store") is not False


async def remember(store: QuotaStore, response_id: str, owner: Owner) -> None:
    value = f"{owner.alias}\n{owner.provider}"
    await store.note(_name(response_id), value, time.time() + RETENTION_SECONDS)


async def owner_of(store: QuotaStore, response_id: str) -> Owner | None:
    value = await store.noted(_name(response_id))
    if value is None:
        return None
    alias, _, provider = value.partition("\n")
    return Owner(alias, provider)


async def keeper(
    store: QuotaStore,
    response_id: str,
    principal: Principal,
    routes: Mapping[str, ModelRoute],
    *,
    param: str | None = None,
) -> tuple[Owner | None, Target]:
    """Who made a stored response, and the target to reach it through (see
    `reachable_target`); 503 when the store that knows cannot be asked."""
    try:
        owner = await owner_of(store, response_id)
    except StoreUnavailable:
        raise store_down() from None
    return owner, reachable_target(owner, principal, routes, response_id, param=param)


async def continued_target(
    store: QuotaStore,
    route: ModelRoute,
    principal: Principal,
    routes: Mapping[str, ModelRoute],
    previous: str,
) -> Target:
    """A Responses call continuing a stored response goes to the provider keeping it, when
    that response was made through an alias the caller may use."""
    param = "previous_response_id"
    _, kept_by = await keeper(store, previous, principal, routes, param=param)
    for target in route.targets:
        if target.provider.name == kept_by.provider.name:
            return target
    raise not_found(previous, param)


async def remember_answer(store: QuotaStore, response_id: str | None, owner: Owner) -> None:
    """Note who made a response its provider stores (`response_id`: the answer's, None when
    it failed), so that only callers allowed its alias reach it later."""
    if response_id is None:
        return
    try:
        await remember(store, response_id, owner)
    except StoreUnavailable:
        log.warning(
            "response %s is stored by its provider but cannot be reached later: "
            "the quota store is unavailable",
            shorten(response_id),
        )


def keeps_responses(route: ModelRoute) -> bool:
    """Whether any target of the alias stores responses (serves the Responses API)."""
    return any(_serves(target) for target in route.targets)


def reachable_target(
    owner: Owner | None,
    principal: Principal,
    routes: Mapping[str, ModelRoute],
    response_id: str,
    *,
    param: str | None = None,
) -> Target:
    """The target to reach a stored response through; 404 (as OpenAI says it) when the
    response is unknown here or its alias is not the caller's to use. `param`: the field
    that named the response, if a body field did."""
    route = routes.get(owner.alias) if owner is not None else None
    if owner is not None and route is not None and principal.may_use(owner.alias):
        for target in route.targets:
            if target.provider.name == owner.provider and _serves(target):
                return target
    raise not_found(response_id, param)


def not_found(response_id: str, param: str | None = None) -> NotFound:
    what = "Previous response" if param == "previous_response_id" else "Response"
    return NotFound(
        f"{what} with id '{shorten(response_id)}' not found.", param=param, code="not_found"
    )


def _serves(target: Target) -> bool:
    return provider_api(target.provider).locate_native(RESPONSES_API, target) is not None


def _name(response_id: str) -> str:
    return "response:" + response_id
