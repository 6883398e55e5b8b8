"""Token usage: what a call used, and the rough estimate quotas reserve before it runs.

Estimates are deliberately rough and on the high side (about four bytes of JSON a token); the
provider's own figures always replace them when they arrive. Which fields of a body count is
each wire schema's knowledge (`extproc.translators`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

BYTES_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    """Every input token, cached ones included."""
    output_tokens: int
    """Every output token, reasoning included."""
    cached_input_tokens: int = 0
    """Of the input, tokens read from the provider's prompt cache (priced lower)."""
    cache_write_tokens: int = 0
    """Of the input, tokens written to the provider's prompt cache (Anthropic prices them
    higher)."""
    reasoning_tokens: int = 0
    """Of the output, tokens the model spent thinking."""

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cached_input_tokens - self.cache_write_tokens)


def estimate_tokens(values: Iterable[Any]) -> int:
    """About one token per four bytes of the values' JSON."""
    return math.ceil(sum(_json_size(value) for value in values) / BYTES_PER_TOKEN)


def _json_size(value: Any) -> int:
    """The length of `value`'s compact JSON; a list is measured item by item, so that a long
    conversation is never written out whole just to be measured."""
    if isinstance(value, list) and value:
        return 1 + sum(_json_size(item) + 1 for item in value)  # brackets and commas
    return len(orjson.dumps(value))


def estimate_text_tokens(chars: int, pieces: int) -> int:
    """Output streamed so far: about four characters a token, at least one per piece."""
    return max(pieces, math.ceil(chars / BYTES_PER_TOKEN))
