"""Limits as the file writes them → runtime `Limit`s, checked against the models they name."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from extproc.config.model import ModelRoute
from extproc.config.schema import LimitSpec
from extproc.config.units import parse_duration
from extproc.quota.limits import MICRO_USD_PER_USD, Limit, Metric
from extproc.quota.windows import Window, calendar_window, fixed_window


def compile_limits(
    scope: str,
    specs: list[LimitSpec],
    where: str,
    *,
    allowed: set[str],
    models: Mapping[str, ModelRoute],
    problems: list[tuple[str, str]],
) -> tuple[Limit, ...]:
    """Runtime limits for one key or team; `allowed` is the model aliases it may use."""
    limits: list[Limit] = []
    usable = set(models) if "*" in allowed else allowed
    for index, spec in enumerate(specs):
        metric: Metric = spec.metric  # type: ignore[assignment]
        if spec.model is not None and spec.model not in models:
            problems.append((f"{where}.{index}.model", f"unknown model {spec.model!r}"))
        if metric == "usd":
            priced = {spec.model} if spec.model else usable
            unpriced = sorted(
                alias for alias in priced if alias in models and models[alias].price is None
            )
            if unpriced:
                problems.append(
                    (
                        f"{where}.{index}.usd",
                        "no price for " + ", ".join(unpriced) + " in prices (or on its targets)",
                    )
                )
        amount = getattr(spec, metric)
        limit = Limit(
            scope=scope,
            metric=metric,
            amount=round(amount * MICRO_USD_PER_USD) if metric == "usd" else amount,
            window=_window(spec),
            model=spec.model,
            shadow=spec.mode == "shadow",
            clamp_max_tokens=spec.clamp_max_tokens,
            tool=spec.tool,
        )
        if any(other.counter == limit.counter for other in limits):
            problems.append((f"{where}.{index}", "the same limit is set twice"))
        limits.append(limit)
    return tuple(limits)


def _window(spec: LimitSpec) -> Window | None:
    if spec.per is None:
        return None
    if spec.per in ("day", "month"):
        return calendar_window(spec.per, ZoneInfo(spec.tz))  # type: ignore[arg-type]
    return fixed_window(parse_duration(spec.per), str(spec.per))
