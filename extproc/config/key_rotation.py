"""A key entry rotated: a new digest beside the old ones, which expire after a grace period.

Clients move to the new key while the old one still works; at the old digest's `expires_at`
it stops, with `key_expired`. Digests already past their expiry are dropped from the entry.
"""

from __future__ import annotations

import datetime
from typing import Any

from extproc.config.schema import KeySpec


def rotated_entry(entry: KeySpec, new_digest: str, *, now: float, grace: float) -> dict[str, Any]:
    """`entry` as it reads after the rotation at `now`, its old digests valid `grace` seconds
    more (its file format, in field order)."""
    expires_at = now + grace
    deadline = datetime.datetime.fromtimestamp(int(expires_at), datetime.UTC)
    digests: list[dict[str, Any]] = [{"sha256": new_digest}]
    for digest in entry.all_digests():
        if digest.expires_at is not None and digest.expires_at.timestamp() <= expires_at:
            if digest.expires_at.timestamp() > now:
                digests.append(_written(digest.model_dump(exclude_none=True)))
            continue
        old = digest.model_dump(exclude_none=True) | {"expires_at": deadline}
        digests.append(_written(old))
    rest = entry.model_dump(exclude_defaults=True, exclude={"id", "sha256", "digests"})
    return {"id": entry.id, "digests": digests, **_written(rest)}


def _written(fields: dict[str, Any]) -> dict[str, Any]:
    """Instants as the configuration writes them: `2026-12-12T08:00:00Z`."""
    return {
        name: value.isoformat().replace("+00:00", "Z")
        if isinstance(value, datetime.datetime)
        else value
        for name, value in fields.items()
    }
