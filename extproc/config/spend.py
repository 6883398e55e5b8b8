"""The `spend` section compiled: who sees what calls cost, the ledger, budget alerts."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path

from extproc.config.model import AlertSettings, LedgerSettings, SpendSettings
from extproc.config.schema import SpendSpec, ledger_store_problem
from extproc.config.secrets import REFERENCE, Secret, resolve_secret

Problems = list[tuple[str, str]]


def compile_spend(
    spec: SpendSpec, base_dir: Path, environ: Mapping[str, str] | None, problems: Problems
) -> SpendSettings:
    """`environ` None: a check without the environment (references stay unresolved)."""
    ledger = None
    if spec.ledger is not None:
        store = _value(spec.ledger.store, "spend.ledger.store", base_dir, environ, problems)
        if store is not None and (problem := ledger_store_problem(store.reveal())):
            problems.append(("spend.ledger.store", problem))
        store = store or Secret(spec.ledger.store)
        journal = spec.ledger.journal
        ledger = LedgerSettings(
            store=store,
            journal=Path(journal) if journal is not None else default_journal(store),
            retention=spec.ledger.retention,
            max_backlog=spec.ledger.max_backlog,
        )
    alerts = None
    if spec.alerts is not None:
        url = _value(spec.alerts.url, "spend.alerts.url", base_dir, environ, problems)
        if url is not None and not url.reveal().startswith(("http://", "https://")):
            problems.append(("spend.alerts.url", "must be an http(s) URL"))
        alerts = AlertSettings(
            url=url or Secret(spec.alerts.url),
            thresholds=tuple(sorted({value / 100 for value in spec.alerts.thresholds})),
            timeout=spec.alerts.timeout,
        )
    return SpendSettings(expose_cost=spec.expose_cost, ledger=ledger, alerts=alerts)


def default_journal(store: Secret) -> Path:
    """One journal directory per store, under the system's temporary directory."""
    digest = hashlib.sha256(store.reveal().encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"extproc-spend-{digest}"


def _value(
    value: str,
    where: str,
    base_dir: Path,
    environ: Mapping[str, str] | None,
    problems: Problems,
) -> Secret | None:
    """The setting, its reference resolved (None: unresolved, or a problem noted)."""
    if not REFERENCE.match(value):
        return Secret(value)
    if environ is None:
        return None
    try:
        return resolve_secret(value, base_dir=base_dir, environ=environ)
    except ValueError as error:
        problems.append((where, str(error)))
        return None
