"""The gateway key's format: `sk-gw-`, 32 random base62 characters, and a 6-character
checksum (CRC32 of the random part, base62).

The prefix lets secret scanners find a leaked key; the checksum lets them (and a person) tell
a real key from text that merely looks like one, without asking the gateway. The gateway
itself stores and checks only a key's SHA-256, so keys made before this format still work.
"""

from __future__ import annotations

import re
import secrets
import string
import zlib

PREFIX = "sk-gw-"
ALPHABET = string.digits + string.ascii_letters
RANDOM_LENGTH = 32
"""About 190 bits of randomness."""
CHECKSUM_LENGTH = 6
SCANNER_PATTERN = re.compile(
    rf"\b{PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH}}}[0-9A-Za-z]{{{CHECKSUM_LENGTH}}}\b"
)
"""What a secret scanner looks for (then `has_valid_checksum` confirms)."""


def new_key() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + body + _checksum(body)


def has_valid_checksum(key: str) -> bool:
    """A key in this format whose checksum matches: made by `new_key`, not mistyped."""
    if not SCANNER_PATTERN.fullmatch(key):
        return False
    body = key[len(PREFIX) : len(PREFIX) + RANDOM_LENGTH]
    return key[-CHECKSUM_LENGTH:] == _checksum(body)


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))
