"""GET /v1/models and /v1/models/{id}: answered by the gateway, listing what the key may use."""

from __future__ import annotations

from urllib.parse import unquote

import orjson

from extproc.config import Gateway, ModelRoute, Principal
from extproc.endpoints.spec import LocalAnswer
from extproc.errors import NotFound, shorten

PATH = "/v1/models"
CREATED = 0
"""Aliases have no creation time; OpenAI's schema requires the field."""


def answer(gateway: Gateway, principal: Principal, path: str) -> bytes:
    if path == PATH:
        allowed = [
            _describe(route) for alias, route in gateway.models.items() if principal.may_use(alias)
        ]
        return orjson.dumps({"object": "list", "data": allowed})
    alias = unquote(path.removeprefix(PATH + "/"))
    route = gateway.models.get(alias)
    if route is None or not principal.may_use(alias):
        raise NotFound(
            f"The model '{shorten(alias)}' does not exist.", param="model", code="model_not_found"
        )
    return orjson.dumps(_describe(route))


def _describe(route: ModelRoute) -> dict[str, object]:
    return {"id": route.alias, "object": "model", "created": CREATED, "owned_by": "gateway"}


ENDPOINT = LocalAnswer(answer=answer)
