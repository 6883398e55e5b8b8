"""Guardrail policies, and what they decide about one direction of a call: which matches are
masked, which only noted, and whether the text is blocked."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from extproc.guardrails.detectors import Detector
from extproc.guardrails.external import ExternalCheck, judge
from extproc.guardrails.scan import Match, ScanTimeout, find, masked

log = logging.getLogger(__name__)

Action = Literal["block", "mask", "log"]
Setting = Literal["block", "mask", "log", "off"]
Direction = Literal["input", "output"]
_STRENGTH: dict[Action, int] = {"log": 0, "mask": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    detectors: tuple[Detector, ...]
    external: ExternalCheck | None
    input: Setting
    output: Setting

    def setting(self, direction: Direction) -> Setting:
        return self.input if direction == "input" else self.output


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy acted: never with the matched text, only where and how."""

    policy: str
    detector: str
    action: Action
    direction: Direction


@dataclass(slots=True)
class Verdicts:
    """What the policies decided about one direction of one call."""

    decisions: list[Decision] = field(default_factory=list)
    blocked: Decision | None = None

    def note(self, decision: Decision) -> None:
        if decision not in self.decisions:
            self.decisions.append(decision)
        if decision.action == "block" and self.blocked is None:
            self.blocked = decision


class Screen:
    """The policies that act on one direction of a call, compiled for it: each detector once,
    with every policy that names it."""

    __slots__ = ("_actions", "detectors", "direction", "external")

    def __init__(self, policies: Sequence[Policy], direction: Direction) -> None:
        self.direction = direction
        actions: dict[Detector, list[tuple[str, Action]]] = {}
        self.external: list[tuple[ExternalCheck, str, Action]] = []
        for policy in policies:
            setting = policy.setting(direction)
            if setting == "off":
                continue
            for detector in policy.detectors:
                actions.setdefault(detector, []).append((policy.name, setting))
            if policy.external is not None:
                # A classifier flags a text, not a part of it: masking is blocking here.
                judged: Action = "block" if setting == "mask" else setting
                self.external.append((policy.external, policy.name, judged))
        self._actions = actions
        self.detectors = tuple(actions)

    @property
    def active(self) -> bool:
        return bool(self.detectors or self.external)

    def apply(self, text: str, verdicts: Verdicts) -> str:
        """The text as it may pass (masked where a policy masks), noting the decisions."""
        try:
            matches = find(self.detectors, text)
        except ScanTimeout as timeout:
            self.timed_out(timeout.detector, verdicts)
            return text
        return self.settle(text, matches, verdicts) if matches else text

    def settle(self, text: str, matches: Sequence[Match], verdicts: Verdicts) -> str:
        """The decisions on `matches` in `text`, and the text with those to mask masked;
        when a policy blocks, only the text before the first match it blocks."""
        to_mask = []
        blocked_at: int | None = None
        for match in matches:
            strongest: Action = "log"
            for policy, action in self._actions[match.detector]:
                verdicts.note(Decision(policy, match.detector.name, action, self.direction))
                if _STRENGTH[action] > _STRENGTH[strongest]:
                    strongest = action
            if strongest == "mask":
                to_mask.append(match)
            elif strongest == "block" and blocked_at is None:
                blocked_at = match.start
        if blocked_at is not None:
            text = text[:blocked_at]
            to_mask = [match for match in to_mask if match.end <= blocked_at]
        return masked(text, to_mask) if to_mask else text

    async def judge_externally(self, texts: Sequence[str], verdicts: Verdicts) -> None:
        for check, policy, action in self.external:
            if verdicts.blocked is not None:
                return
            judgement = await judge(check, texts)
            if judgement.flagged:
                verdicts.note(Decision(policy, check.name, action, self.direction))

    def timed_out(self, detector: Detector, verdicts: Verdicts) -> None:
        """A detector too slow to finish blocks: what it would have found is unknown."""
        log.warning("guardrail detector %s timed out: the text is blocked", detector.name)
        for policy, _ in self._actions[detector]:
            verdicts.note(Decision(policy, detector.name, "block", self.direction))


def screens(policies: Sequence[Policy]) -> tuple[Screen | None, Screen | None]:
    """The input and output screens of a call under `policies` (None: nothing to do)."""
    found = (Screen(policies, "input"), Screen(policies, "output"))
    return found[0] if found[0].active else None, found[1] if found[1].active else None
