"""JSON Web Tokens made by a test: an RSA key, its JWKS, and tokens it signs (RS256) — or
tokens that should be refused (expired, tampered, `alg: none`)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_ID = "test-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _number(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Signer:
    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer, self.audience = issuer, audience
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_jwks(self, path: Path) -> Path:
        numbers = self._key.public_key().public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KEY_ID}
        key |= {"n": _number(numbers.n), "e": _number(numbers.e)}
        path.write_text(json.dumps({"keys": [key]}))
        return path

    def token(self, lifetime: float = 3600, **claims: Any) -> str:
        """A valid token for `claims` (its iss, aud, iat and exp filled in unless given)."""
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + lifetime}
        return self.sign({"alg": "RS256", "typ": "JWT", "kid": KEY_ID}, payload | claims)

    def sign(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64(signature)}"


def tampered(token: str, **claims: Any) -> str:
    """`token` with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_b64(json.dumps(decoded | claims).encode())}.{signature}"


def unsigned(**payload: Any) -> str:
    """A token claiming `alg: none`, no signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."
