"""mTLS for the server: its certificate, and the CA a client's certificate must chain to.

A client without a certificate from that CA fails the handshake and never sends a frame. The
certificate is read again when its files change (a renewed Kubernetes Secret, cert-manager),
for the connections made after; the ones open keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0
"""Seconds between looks at the certificate files."""


class ServerTls:
    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path) -> None:
        self._files = (cert_file, key_file, client_ca_file)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["h2"])
        self._load()

    async def follow(self) -> None:
        """Load the certificate again whenever its files change, until cancelled."""
        seen = self._stamps()
        while True:
            await asyncio.sleep(CHECK_EVERY)
            stamps = self._stamps()
            if stamps == seen:
                continue
            try:
                self._load()
            except (OSError, ssl.SSLError) as error:  # half-written: try again next time
                log.warning("the processor's certificate files changed but do not load: %s", error)
                continue
            seen = stamps
            log.info("the processor's certificate was loaded again")

    def _load(self) -> None:
        cert, key, client_ca = self._files
        self.context.load_cert_chain(cert, key)
        self.context.load_verify_locations(cafile=client_ca)

    def _stamps(self) -> tuple[float, ...]:
        stamps = []
        for path in self._files:
            with contextlib.suppress(OSError):
                stamps.append(path.stat().st_mtime)
        return tuple(stamps)
