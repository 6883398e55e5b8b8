"""Google Cloud access tokens from Application Default Credentials — a service-account key
file (`GOOGLE_APPLICATION_CREDENTIALS`), GKE Workload Identity or another metadata server,
gcloud's user credentials — as google-auth resolves them for every Google client library.

Tokens are renewed ahead of their expiry in a thread: a request never waits on the token
endpoint, it carries the token current when it is sent."""

from __future__ import annotations

import datetime
from typing import Any

from extproc.credentials.renewal import BackgroundRenewal

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_AHEAD = datetime.timedelta(minutes=5)
"""How long before its expiry a token is renewed (tokens last an hour)."""


class GcpCredentials:
    __slots__ = ("_credentials", "_http", "_renewal", "_token")

    def __init__(self, credentials: Any) -> None:
        """`credentials`: google-auth credentials; their first token is fetched now."""
        # google-auth loads only for Vertex providers: every command loads the configuration.
        import urllib3  # noqa: PLC0415
        from google.auth.transport.urllib3 import Request  # noqa: PLC0415

        self._credentials = credentials
        self._http = Request(urllib3.PoolManager())  # type: ignore[no-untyped-call]
        self._renewal = BackgroundRenewal(self._renew)
        credentials.refresh(self._http)
        self._token: str = credentials.token

    @classmethod
    def from_adc(cls) -> GcpCredentials:
        """Resolved now (at load, off any request); ValueError when none are found."""
        import google.auth  # noqa: PLC0415

        try:
            credentials, _ = google.auth.default(scopes=[SCOPE])
            return cls(credentials)
        except google.auth.exceptions.GoogleAuthError as error:  # none found, or no token
            raise ValueError(str(error)) from None

    def token(self) -> str:
        """The access token to send now; never blocks (a renewal runs in a thread)."""
        expiry = self._credentials.expiry
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth: naive UTC
        if expiry is not None and expiry - now < REFRESH_AHEAD:
            self._renewal.start()
        return self._token

    def _renew(self) -> None:
        self._credentials.refresh(self._http)
        self._token = self._credentials.token

    def __repr__(self) -> str:
        return "GcpCredentials(<from Application Default Credentials>)"
