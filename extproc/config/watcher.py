"""Hot reload: the processor follows its configuration file, and the key files beside it.

Each new stream takes the snapshot current when it opens, so a request never sees two
configurations. A file that fails validation changes nothing (the problems are logged), and
neither does one that changes what Envoy's configuration is rendered from (the set of
providers and how each is reached, the listener, the processor) or what is opened once at
start (quota store, telemetry): those need `extproc envoy-config` and a restart. Everything
else the processor alone reads — keys, models, limits, prices, and of a provider its kind,
key, base_url path, api_version, anthropic_version, stream_usage and responses_api — applies
live.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from extproc.config.key_files import key_file_entries
from extproc.config.loader import ConfigError, load_gateway
from extproc.config.model import Gateway, Provider

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""Polling, not inotify: Kubernetes swaps ConfigMap files through symlinks, which polls see.
Twice a second keeps a revoked key's last call within a second of its file's removal."""


class GatewaySource:
    """The current configuration snapshot, replaced whole on a successful reload."""

    def __init__(self, gateway: Gateway) -> None:
        self.current = gateway
        self._stamp = _stamp(gateway)
        self.reloads: Counter[str] = Counter(applied=0, invalid=0, needs_restart=0)
        """Reload attempts by result: `applied`, `invalid`, `needs_restart`."""

    def reload_if_changed(self) -> bool:
        """Load the file again if it changed; True when a new snapshot took effect."""
        stamp = _stamp(self.current)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            candidate = load_gateway(self.current.source)
        except ConfigError as error:
            self.reloads["invalid"] += 1
            log.error("configuration not reloaded, keeping the previous one:\n%s", error)
            return False
        if _fixed_at_start(candidate) != _fixed_at_start(self.current):
            self.reloads["needs_restart"] += 1
            log.error(
                "configuration not reloaded: providers, listener, processor, quota store or "
                "telemetry changed; re-render Envoy's configuration and restart the gateway"
            )
            return False
        self.current = candidate
        self.reloads["applied"] += 1
        log.info(
            "configuration reloaded: %d models, %d keys",
            len(candidate.models),
            len(candidate.principals),
        )
        return True

    async def follow(self) -> None:
        """Reload on change until cancelled; a failing check is logged and the next one
        still happens (a file that cannot be read is already a refused reload)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                log.exception("checking the configuration file failed; still following it")


def _stamp(gateway: Gateway) -> tuple[object, ...]:
    """What changes when the file or a key file does (a key file added, edited, removed)."""
    stamps: list[object] = [_file_stamp(gateway.source)]
    if gateway.key_files is not None:
        try:
            files = key_file_entries(gateway.key_files)
        except OSError:
            files = []
        stamps += [(path.name, _file_stamp(path)) for path in files]
    return tuple(stamps)


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def _fixed_at_start(gateway: Gateway) -> tuple[object, ...]:
    """What only a restart changes: Envoy's rendered configuration (provider keys excepted),
    the quota store connection and telemetry."""
    providers = tuple(
        (name, _reached_by_envoy(provider)) for name, provider in sorted(gateway.providers.items())
    )
    quota = gateway.quota
    # Aliases with fallback have clusters and routes of their own.
    fallback = tuple(
        (alias, route.retry, tuple((t.provider.name, t.priority, t.weight) for t in route.targets))
        for alias, route in sorted(gateway.models.items())
        if route.retry is not None
    )
    return (
        providers,
        fallback,
        gateway.listen,
        gateway.processor,
        quota.store,
        quota.timeout,
        gateway.telemetry,
    )


def _reached_by_envoy(provider: Provider) -> tuple[object, ...]:
    """What Envoy's cluster for the provider is rendered from."""
    return (
        provider.scheme,
        provider.host,
        provider.port,
        provider.timeout,
        provider.connect_timeout,
        provider.max_concurrent_requests,
        provider.ca_file,
    )
