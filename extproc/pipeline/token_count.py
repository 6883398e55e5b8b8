"""Token counts: sent to a provider that counts in the client's schema, else estimated here."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from extproc.config import Target
from extproc.endpoints.spec import TokenCount
from extproc.providers import Location, provider_api
from extproc.translators.ir import JsonObject
from extproc.usage import estimate_tokens


@dataclass(frozen=True, slots=True)
class CountUpstream:
    location: Location
    payload: bytes
    """The client's body naming the target's model."""


def count_upstream(count: TokenCount, target: Target, body: JsonObject) -> CountUpstream | None:
    """Where the count goes when the target's provider counts natively; None when not."""
    location = provider_api(target.provider).locate_native(count.path, target)
    if location is None:
        return None
    return CountUpstream(location, orjson.dumps({**body, "model": target.model}))


def estimated_count(count: TokenCount, body: JsonObject) -> bytes:
    """The answer from the gateway's estimate: the size of the input fields, as quotas see it."""
    fields = count.schema.provider.input_fields.get(count.operation, ())
    tokens = estimate_tokens(body[name] for name in fields if name in body)
    return orjson.dumps(count.estimate_answer(tokens))
