"""Vertex AI access tokens: renewed in a thread shortly before they expire, while requests
keep the current one; never renewed while far from expiry."""

from __future__ import annotations

import datetime
import threading
from typing import Any

from extproc.credentials.gcp import REFRESH_AHEAD, GcpCredentials
from tests.harness import wait_until


class Credentials:
    """google-auth credentials whose token expires at `expiry`; renewals wait for the test."""

    def __init__(self, minutes_left: float) -> None:
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None
        self.refreshes = 0
        self.release = threading.Event()
        self._minutes_left = minutes_left

    def refresh(self, request: Any) -> None:
        if self.refreshes:  # a renewal, in its thread: held until the test lets it go
            self.release.wait(5)
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        self.expiry = now + datetime.timedelta(minutes=self._minutes_left)
        self._minutes_left = 60


def test_a_token_near_its_expiry_is_renewed_in_a_thread_without_blocking() -> None:
    source = Credentials(minutes_left=REFRESH_AHEAD.total_seconds() / 60 - 1)
    tokens = GcpCredentials(source)

    assert (tokens.token(), tokens.token()) == ("token-1", "token-1"), "never waits"
    source.release.set()
    wait_until(lambda: tokens.token() == "token-2", "never renewed")
    assert source.refreshes == 2, "one renewal, not one per request"


def test_a_fresh_token_is_not_renewed() -> None:
    source = Credentials(minutes_left=55)
    tokens = GcpCredentials(source)
    for _ in range(3):
        assert tokens.token() == "token-1"
    assert source.refreshes == 1
