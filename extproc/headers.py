"""Names of the HTTP headers the gateway reads and owns, in one place.

Every header with the internal prefix belongs to the gateway: client-sent copies are removed
before routing and the gateway's own values are always overwritten, never appended.
"""

INTERNAL_PREFIX = "x-extproc-"
ROUTE = INTERNAL_PREFIX + "route"
"""Set by the processor to the provider name; Envoy's route table picks the cluster from it."""

PATH = ":path"
METHOD = ":method"
STATUS = ":status"
CONTENT_TYPE = "content-type"
CONTENT_LENGTH = "content-length"
TARGET = INTERNAL_PREFIX + "target"
"""Set on an attempt's answer by the processor: which of the alias's targets gave it."""
PROVIDER = INTERNAL_PREFIX + "provider"
"""On answers, when `routing.expose_provider` asks: the provider that gave the answer."""
REFUSED = INTERNAL_PREFIX + "refused"
"""Set on the processor's own answer to an attempt it could not prepare for its target (a
field that provider cannot carry): the error code; the body is already the client's."""
ATTEMPT_COUNT = "x-envoy-attempt-count"
"""Set by Envoy on each attempt of a call to an alias with fallback (its number) and on the
answer (the attempts made)."""
TOKEN_COUNT = INTERNAL_PREFIX + "token-count"
"""On token count answers: `provider` when the provider counted, `estimate` when the gateway
did."""
REQUEST_ID = "x-request-id"
"""Set by Envoy on every request; ties the access log, spans and Envoy's logs together."""

ACCEPT_ENCODING = "accept-encoding"
CONTENT_ENCODING = "content-encoding"
RETRY_AFTER = "retry-after"
RATELIMIT_PREFIX = "x-ratelimit-"
"""`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, as OpenAI names them."""
TRACEPARENT = "traceparent"
ENVOY_EXTERNAL_ADDRESS = "x-envoy-external-address"

AUTHORIZATION = "authorization"
API_KEY = "api-key"
X_API_KEY = "x-api-key"
GOOG_API_KEY = "x-goog-api-key"
ANTHROPIC_VERSION = "anthropic-version"
AWS_SIGNATURE_HEADERS = ("x-amz-date", "x-amz-security-token", "x-amz-content-sha256")
"""With `authorization`, what signs a request to AWS (SigV4)."""

CREDENTIAL_HEADERS = (AUTHORIZATION, API_KEY, X_API_KEY)
"""Headers a client may carry its gateway key in; all of them are removed before upstream."""
REMOVED_FROM_CLIENTS = (*CREDENTIAL_HEADERS, GOOG_API_KEY, *AWS_SIGNATURE_HEADERS)
"""Client headers that never go upstream: its key, and any provider credential it sent."""
PROVIDER_HEADERS = (*REMOVED_FROM_CLIENTS, ANTHROPIC_VERSION)
"""What one provider's request may carry that another's must not (keys, API versions)."""
