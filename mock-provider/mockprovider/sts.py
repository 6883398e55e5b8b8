"""The mock as AWS STS, for web identity (IRSA on EKS): `AssumeRoleWithWebIdentity` trades a
service account's token for the test credentials, as short-lived ones."""

from __future__ import annotations

import time
from collections.abc import Mapping
from xml.sax.saxutils import escape

from mockprovider.bedrock import TEST_CREDENTIALS

LIFETIME_SECONDS = 3600
NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def assume_role_with_web_identity(form: Mapping[str, str]) -> tuple[int, str]:
    """(status, XML body) for the request's form fields."""
    for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
        if not form.get(name):
            return 400, _error("ValidationError", f"{name} is required")
    [(access_key, secret_key)] = TEST_CREDENTIALS.items()
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + LIFETIME_SECONDS))
    role = escape(form["RoleArn"])
    body = f"""<AssumeRoleWithWebIdentityResponse xmlns="{NAMESPACE}">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>{escape(secret_key)}</SecretAccessKey>
      <SessionToken>mock-web-identity-session</SessionToken>
      <Expiration>{expires}</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:llm:gateway</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>{role}/{escape(form["RoleSessionName"])}</Arn>
      <AssumedRoleId>AROAMOCK:{escape(form["RoleSessionName"])}</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>mock-request</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
    return 200, body


def _error(code: str, message: str) -> str:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error></ErrorResponse>"
    )
