"""Token counts: sent to a provider that counts in the client's schema, else estimated here."""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from extproc.config import ModelRoute, Target
from extproc.endpoints.spec import TokenCount
from extproc.pipeline.routing import choose_target
from extproc.providers import Location, provider_api
from extproc.translators.ir import JsonObject
from extproc.usage import estimate_tokens


@dataclass(frozen=True, slots=True)
class CountUpstream:
    target: Target
    location: Location
    payload: bytes
    """The client's body naming the target's model."""


def plan_count(
    count: TokenCount, route: ModelRoute, body: JsonObject, rng: random.Random
) -> CountUpstream | bytes:
    """Where a count goes: to the target's provider when it counts natively (an alias with
    fallback counts as its first target would), else answered here (the answer's bytes)."""
    target = route.targets[0] if route.retry is not None else choose_target(route, rng)
    upstream = count_upstream(count, target, body)
    return estimated_count(count, body) if upstream is None else upstream


def count_upstream(count: TokenCount, target: Target, body: JsonObject) -> CountUpstream | None:
    """Where the count goes when the target's provider counts natively; None when not."""
    location = provider_api(target.provider).locate_native(count.path, target)
    if location is None:
        return None
    return CountUpstream(target, location, orjson.dumps({**body, "model": target.model}))


def estimated_count(count: TokenCount, body: JsonObject) -> bytes:
    """The answer from the gateway's estimate: the size of the input fields, as quotas see it."""
    fields = count.schema.provider.input_fields.get(count.operation, ())
    tokens = estimate_tokens(body[name] for name in fields if name in body)
    return orjson.dumps(count.estimate_answer(tokens))
