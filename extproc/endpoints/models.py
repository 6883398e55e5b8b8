"""GET /v1/models and /v1/models/{id}: answered by the gateway, listing what the key may use.

Each alias says which endpoints (and so which client schemas) can call it: every provider
kind serves chat in both schemas; embeddings and legacy completions need a provider that
offers them. A client that sends `anthropic-version` (Anthropic's SDKs) gets Anthropic's list
shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

import orjson

from extproc.config import Gateway, ModelRoute, Principal
from extproc.endpoints.calls import MODEL_CALLS
from extproc.endpoints.spec import LocalAnswer
from extproc.errors import NotFound, shorten
from extproc.headers import ANTHROPIC_VERSION
from extproc.providers import provider_api
from extproc.translators.ir import JsonObject

PATH = "/v1/models"
CREATED = 0
"""Aliases have no creation time; both schemas require the field."""
ANTHROPIC_CREATED = "1970-01-01T00:00:00Z"


def answer(
    gateway: Gateway, principal: Principal, path: str, headers: Mapping[str, list[str]]
) -> bytes:
    anthropic = ANTHROPIC_VERSION in headers
    describe = _describe_anthropic if anthropic else _describe
    if path == PATH:
        allowed = [
            describe(route) for alias, route in gateway.models.items() if principal.may_use(alias)
        ]
        if not anthropic:
            return orjson.dumps({"object": "list", "data": allowed})
        first, last = (allowed[0]["id"], allowed[-1]["id"]) if allowed else (None, None)
        page = {"data": allowed, "has_more": False, "first_id": first, "last_id": last}
        return orjson.dumps(page)
    alias = unquote(path.removeprefix(PATH + "/"))
    route = gateway.models.get(alias)
    if route is None or not principal.may_use(alias):
        raise NotFound(
            f"The model '{shorten(alias)}' does not exist.", param="model", code="model_not_found"
        )
    return orjson.dumps(describe(route))


def endpoints(route: ModelRoute) -> list[str]:
    """The paths that can call this alias: those every one of its targets can serve."""
    operations = set.intersection(
        *(set(provider_api(t.provider).schema.provider.operations) for t in route.targets)
    )
    return [path for path, call in MODEL_CALLS.items() if call.operation in operations]


def _describe(route: ModelRoute) -> JsonObject:
    paths = endpoints(route)
    return {
        "id": route.alias,
        "object": "model",
        "created": CREATED,
        "owned_by": "gateway",
        "schemas": sorted({MODEL_CALLS[path].schema.name for path in paths}),
        "endpoints": paths,
    }


def _describe_anthropic(route: ModelRoute) -> JsonObject:
    return {
        "type": "model",
        "id": route.alias,
        "display_name": route.alias,
        "created_at": ANTHROPIC_CREATED,
    }


ENDPOINT: LocalAnswer = LocalAnswer(answer=answer)
