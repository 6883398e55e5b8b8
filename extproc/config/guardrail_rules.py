"""Guardrail policies as the file writes them → runtime `Policy`s, and the checks that every
policy a key, team, rule or model names exists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from extproc.config.schema import GatewaySpec, GuardrailSpec, KeySpec
from extproc.config.secrets import resolve_secret
from extproc.guardrails.detectors import (
    BUILTIN,
    Detector,
    deny_list_detector,
    pattern_detector,
    pattern_problem,
)
from extproc.guardrails.external import ExternalCheck
from extproc.guardrails.policy import Policy

Problems = list[tuple[str, str]]


def compile_guardrails(
    spec: GatewaySpec,
    keys: list[tuple[str, KeySpec]],
    directory: Path,
    environ: Mapping[str, str] | None,
    problems: Problems,
) -> dict[str, Policy]:
    """The policies by name (`keys`: where each key entry is written, and the entry;
    `environ` None: references are checked, not read)."""
    policies = {
        name: _policy(name, policy, directory, environ, problems)
        for name, policy in spec.guardrails.items()
    }
    known = set(policies)
    named: list[tuple[str, list[str]]] = [
        *((f"{where}.guardrails", key.guardrails) for where, key in keys),
        *((f"teams.{team}.guardrails", entry.guardrails) for team, entry in spec.teams.items()),
        *(
            (f"identity.rules.{index}.guardrails", rule.guardrails)
            for index, rule in enumerate(spec.identity.rules)
        ),
        *((f"models.{alias}.guardrails", model.guardrails) for alias, model in spec.models.items()),
    ]
    for where, names in named:
        check_named(names, where, known, problems)
    return policies


def check_named(names: Iterable[str], where: str, known: set[str], problems: Problems) -> None:
    for index, name in enumerate(names):
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            problems.append((f"{where}.{index}", f"unknown guardrail {name!r} (known: {listed})"))


def _policy(
    name: str,
    spec: GuardrailSpec,
    directory: Path,
    environ: Mapping[str, str] | None,
    problems: Problems,
) -> Policy:
    where = f"guardrails.{name}"
    detectors: list[Detector] = [BUILTIN[detector] for detector in spec.detectors]
    for pattern_name, pattern in spec.patterns.items():
        if problem := pattern_problem(pattern.regex):
            problems.append((f"{where}.patterns.{pattern_name}.regex", problem))
            continue
        placeholder = pattern.placeholder or f"[{pattern_name.upper()}]"
        detectors.append(
            pattern_detector(
                pattern_name, pattern.regex, pattern.max_length, placeholder=placeholder
            )
        )
    if spec.deny:
        detectors.append(deny_list_detector("deny", spec.deny, placeholder="[DENIED]"))
    external = None
    if (check := spec.external) is not None:
        api_key = None
        if check.api_key is not None and environ is not None:
            try:
                api_key = resolve_secret(check.api_key, base_dir=directory, environ=environ)
            except ValueError as error:
                problems.append((f"{where}.external.api_key", str(error)))
        external = ExternalCheck(
            check.name, check.url, check.timeout, check.on_error, check.model, api_key
        )
    return Policy(name, tuple(detectors), external, spec.input, spec.output)
