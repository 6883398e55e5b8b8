"""Limits as the request path uses them, and what a request costs against each."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from extproc.quota.windows import Window
from extproc.usage import Usage

Metric = Literal[
    "requests", "tokens", "input_tokens", "output_tokens", "usd", "concurrent", "tool_calls"
]
TOOL_PREFIX = "mcp:"
"""What a tool call is reserved as, instead of a model alias: `mcp:<server>/<tool>`."""
TOKEN_METRICS: frozenset[Metric] = frozenset({"tokens", "input_tokens", "output_tokens"})
MICRO_USD_PER_USD = 1_000_000
"""Money is counted in integer micro-dollars so that every store works with integers."""


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; the product with a token count is micro-dollars. Cached input
    has prices of its own when the table gives them (else the input price)."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    cache_write_per_million: float | None = None

    def micro_usd(self, usage: Usage) -> float:
        return (
            usage.uncached_input_tokens * self.input_per_million
            + usage.cached_input_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output_per_million
        )

    @staticmethod
    def highest(prices: Sequence[Price | None]) -> Price | None:
        """A price no lower than any of `prices` for any usage (None when one is unknown):
        what a call is reserved at while it is not known which of them will answer."""
        if not prices or any(price is None for price in prices):
            return None
        known = [price for price in prices if price is not None]
        return Price(
            max(price.input_per_million for price in known),
            max(price.output_per_million for price in known),
            cached_input_per_million=max(price.cached_input for price in known),
            cache_write_per_million=max(price.cache_write for price in known),
        )

    @property
    def cached_input(self) -> float:
        cached = self.cached_input_per_million
        return self.input_per_million if cached is None else cached

    @property
    def cache_write(self) -> float:
        written = self.cache_write_per_million
        return self.input_per_million if written is None else written


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str
    """`key:<id>` or `team:<name>`: whose counter this is."""
    metric: Metric
    amount: int
    """The cap in the metric's unit (micro-dollars for `usd`)."""
    window: Window | None
    """None for `concurrent`, which counts requests in flight rather than over time."""
    model: str | None
    """Counts only requests for this model alias; None counts every model."""
    shadow: bool
    clamp_max_tokens: bool
    tool: str | None = None
    """Counts only calls of MCP tools matching this `server/tool` pattern (`docs/*`); a
    limit with a tool, or on `tool_calls`, counts tool calls and never model calls."""
    counter: str = field(init=False, repr=False, compare=False)
    """Stable counter name; a window start is appended per window."""

    def __post_init__(self) -> None:
        # Named once, at load: every metered call names its counters.
        window = self.window.key if self.window else "inflight"
        name = f"{self.scope}:{self.metric}:{window}:{self.model or self.tool or '*'}"
        object.__setattr__(self, "counter", name)

    @property
    def on_tools(self) -> bool:
        return self.metric == "tool_calls" or self.tool is not None

    def counter_at(self, now: float) -> tuple[str, float]:
        """The counter of the window holding `now`, and when that window ends (`now` itself
        for concurrency, which has no window)."""
        if self.window is None:
            return self.counter, now
        start, end = self.window.bounds(now)
        return f"{self.counter}:{math.floor(start)}", end

    def applies_to(self, alias: str) -> bool:
        """Whether a call of `alias` (a model alias, or `mcp:<server>/<tool>`) counts here."""
        if alias.startswith(TOOL_PREFIX):
            tool = alias[len(TOOL_PREFIX) :]
            return self.on_tools and (self.tool is None or fnmatch.fnmatchcase(tool, self.tool))
        return not self.on_tools and (self.model is None or self.model == alias)

    def describe(self) -> str:
        amount = float(self.amount)
        if self.metric == "usd":
            amount = self.amount / MICRO_USD_PER_USD
        text = f"{amount:g} {self.metric}"
        if self.window is not None:
            text += f" per {self.window.label}"
        if self.model is not None or self.tool is not None:
            text += f" for {self.model or self.tool}"
        return f"{self.scope} {text}"

    def cost(self, usage: Usage, price: Price | None) -> int:
        """What a request with this usage counts against the limit."""
        if self.metric in ("requests", "concurrent", "tool_calls"):
            return 1
        if self.metric == "tokens":
            return usage.input_tokens + usage.output_tokens
        if self.metric == "input_tokens":
            return usage.input_tokens
        if self.metric == "output_tokens":
            return usage.output_tokens
        return 0 if price is None else round(price.micro_usd(usage))

    def output_tokens_left(self, used: int, usage: Usage, price: Price | None) -> int | None:
        """How many output tokens still fit beside this usage's input; None if output is free
        under this limit."""
        left = self.amount - used
        if self.metric == "tokens":
            return left - usage.input_tokens
        if self.metric == "output_tokens":
            return left
        if self.metric == "usd" and price is not None and price.output_per_million > 0:
            left -= round(usage.input_tokens * price.input_per_million)
            return int(left // price.output_per_million)
        return None
