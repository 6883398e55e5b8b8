"""Answers a provider compressed although the gateway asked it not to.

The gateway asks every provider for `accept-encoding: identity`, so answers normally arrive
plain. A provider that compresses anyway has its gzip or deflate body inflated here, chunk by
chunk, so its usage can be read and its answer translated; the client gets it plain, and
Envoy compresses it again when the client accepts that.
"""

from __future__ import annotations

import zlib

from extproc.errors import BadGateway

INFLATABLE = frozenset({"gzip", "x-gzip", "deflate"})
MAX_INFLATED = 64 * 1024 * 1024
"""The most one answer may inflate to (a guard against decompression bombs)."""
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # zlib detects which header the stream has


class Inflater:
    __slots__ = ("_inflated", "_stream")

    def __init__(self) -> None:
        self._stream = zlib.decompressobj(_GZIP_OR_ZLIB)
        self._inflated = 0

    def feed(self, chunk: bytes, *, end: bool) -> bytes:
        try:
            plain = self._stream.decompress(chunk, MAX_INFLATED - self._inflated + 1)
            if end:
                plain += self._stream.flush()
        except zlib.error:
            raise BadGateway(
                "The provider's compressed answer could not be decoded.", code="bad_encoding"
            ) from None
        self._inflated += len(plain)
        if self._inflated > MAX_INFLATED:
            raise BadGateway("The provider's answer inflates past the gateway's limit.")
        return plain
