"""AWS credentials from the standard chain — environment variables, the shared config and
credentials files (a profile), a web identity token file (IRSA on EKS), container credentials
(EKS Pod Identity), instance metadata — as botocore resolves them for every AWS SDK.

Temporary credentials are refreshed ahead of their expiry in a thread: a request never waits
on STS or a metadata endpoint, it signs with the credentials current when it is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from extproc.credentials.renewal import BackgroundRenewal

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials

REFRESH_AHEAD_SECONDS = 600
"""How long before their expiry temporary credentials are renewed."""


class AwsCredentials:
    __slots__ = ("_frozen", "_renewal", "_source")

    def __init__(self, source: Any) -> None:
        """`source`: botocore credentials (refreshable or not)."""
        self._source = source
        self._frozen: ReadOnlyCredentials = source.get_frozen_credentials()
        self._renewal = BackgroundRenewal(self._renew)

    @classmethod
    def from_chain(cls, profile: str | None = None) -> AwsCredentials:
        """Resolved now (at load, off any request); ValueError when the chain finds none."""
        # botocore loads only for Bedrock providers: every command loads the configuration.
        import botocore.session  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            source = botocore.session.Session(profile=profile).get_credentials()
            if source is None:
                raise ValueError("no AWS credentials found in the standard chain")
            return cls(source)
        except (BotoCoreError, ClientError) as error:  # STS, a metadata endpoint, a profile
            raise ValueError(str(error)) from None

    def current(self) -> ReadOnlyCredentials:
        """The credentials to sign with now; never blocks (a renewal runs in a thread)."""
        refresh_needed = getattr(self._source, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed(REFRESH_AHEAD_SECONDS):
            self._renewal.start()
        return self._frozen

    def _renew(self) -> None:
        self._frozen = self._source.get_frozen_credentials()

    def __repr__(self) -> str:
        return "AwsCredentials(<from the AWS credential chain>)"
