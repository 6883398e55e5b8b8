"""Which target serves a request: alias → weighted choice among the alias's targets."""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping

from extproc.config import ModelRoute, Principal, Target
from extproc.errors import NotFound, PermissionDenied


def resolve_route(models: Mapping[str, ModelRoute], principal: Principal, alias: str) -> ModelRoute:
    """The route for a model alias this principal may use."""
    route = models.get(alias)
    if route is None:
        raise NotFound(
            f"The model '{alias}' does not exist.", param="model", code="model_not_found"
        )
    if not principal.may_use(alias):
        raise PermissionDenied(
            f"This key may not use the model '{alias}'.", param="model", code="model_not_allowed"
        )
    return route


def choose_target(route: ModelRoute, rng: random.Random) -> Target:
    """A target picked in proportion to its weight; weight-0 targets are never picked."""
    if len(route.targets) == 1:
        return route.targets[0]
    point = rng.random() * route.cumulative_weights[-1]
    return route.targets[bisect.bisect_right(route.cumulative_weights, point)]


def alone_at(route: ModelRoute, start: int) -> int | None:
    """The index of the only target taking traffic at the alias's `start`th priority level,
    where its first attempt goes; None when Envoy picks among several."""
    level = route.priorities[start]
    found = [
        index
        for index, target in enumerate(route.targets)
        if target.weight and target.priority == level
    ]
    return found[0] if len(found) == 1 else None
