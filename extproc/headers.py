"""Names of the HTTP headers the gateway reads and owns, in one place.

Every header with the internal prefix belongs to the gateway: client-sent copies are removed
before routing and the gateway's own values are always overwritten, never appended.

What goes to a provider is an allow-list (`pipeline/upstream_headers.py`): the headers the
gateway sets, `KEPT_FROM_CLIENTS`, the provider's feature headers when the client speaks its
schema, and the provider's `forward_headers`; every other client header stays behind. What
comes back from a provider is an allow-list too (`KEPT_FROM_PROVIDERS`).
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
PREPARED_FOR = INTERNAL_PREFIX + "prepared-for"
"""Set by the processor on a call to an alias with fallback that it prepared for one target
(its index): the first attempt, when it goes there, is sent as it is."""
PROVIDER = INTERNAL_PREFIX + "provider"
"""On answers, when `routing.expose_provider` asks: the provider that gave the answer."""
KEY_EXPIRES_AT = INTERNAL_PREFIX + "key-expires-at"
"""On answers to a key that expires within `key_expiry_notice`: when (RFC 3339, UTC)."""
REFUSED = INTERNAL_PREFIX + "refused"
"""Set on the processor's own answer to an attempt it could not prepare for its target (a
field that provider cannot carry): the error code; the body is already the client's."""
ATTEMPT_COUNT = "x-envoy-attempt-count"
"""Set by Envoy on each attempt of a call to an alias with fallback (its number) and on the
answer (the attempts made)."""
TOKEN_COUNT = INTERNAL_PREFIX + "token-count"
"""On token count answers: `provider` when the provider counted, `estimate` when the gateway
did."""
XFCC = "x-forwarded-client-cert"
"""Who the client's certificate says it is: set by Envoy when it requires one, or by the
trusted hop in front (`identity.xfcc_from_trusted_hop`); a client's own is removed."""
COST_USD = INTERNAL_PREFIX + "cost-usd"
INPUT_TOKENS = INTERNAL_PREFIX + "input-tokens"
OUTPUT_TOKENS = INTERNAL_PREFIX + "output-tokens"
CACHED_INPUT_TOKENS = INTERNAL_PREFIX + "cached-input-tokens"
CACHE_WRITE_TOKENS = INTERNAL_PREFIX + "cache-write-tokens"
REASONING_TOKENS = INTERNAL_PREFIX + "reasoning-tokens"
"""On JSON answers to callers who see costs (`spend.expose_cost`, a key's `expose_cost`): what
the call was charged for, and its price in USD (none when the model has no price)."""
REQUEST_ID = "x-request-id"
"""Set by Envoy on every request; ties the access log, spans and Envoy's logs together."""

ACCEPT_ENCODING = "accept-encoding"
CONTENT_ENCODING = "content-encoding"
RETRY_AFTER = "retry-after"
RATELIMIT_PREFIX = "x-ratelimit-"
"""`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, as OpenAI names them."""
RATELIMIT_RESETS = (RATELIMIT_PREFIX + "reset-requests", RATELIMIT_PREFIX + "reset-tokens")
"""When a provider's limits reset (Go durations: `6m0s`, `20ms`)."""
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
ENVOY_EXTERNAL_ADDRESS = "x-envoy-external-address"

AUTHORIZATION = "authorization"
API_KEY = "api-key"
X_API_KEY = "x-api-key"
GOOG_API_KEY = "x-goog-api-key"
ANTHROPIC_VERSION = "anthropic-version"
AWS_SIGNATURE_HEADERS = ("x-amz-date", "x-amz-security-token", "x-amz-content-sha256")
"""With `authorization`, what signs a request to AWS (SigV4)."""

CREDENTIAL_HEADERS = (AUTHORIZATION, API_KEY, X_API_KEY)
"""Headers a client may carry its gateway key in."""

USER_AGENT = "user-agent"
OPENAI_ORGANIZATION = "openai-organization"
OPENAI_PROJECT = "openai-project"
OPENAI_BETA = "openai-beta"
ANTHROPIC_BETA = "anthropic-beta"
COOKIE = "cookie"

KEPT_FROM_CLIENTS = frozenset(("accept",))
"""Client headers every provider request keeps (beside those the gateway sets)."""
FORWARDED_PROTO = "x-forwarded-proto"
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "expect")
)
"""Headers of one connection, which Envoy's codecs own."""
LEFT_TO_ENVOY = HOP_BY_HOP | {FORWARDED_PROTO, REQUEST_ID}
"""Headers the processor neither keeps nor removes: the connection's; `x-forwarded-proto`,
which Envoy's route matching reads (the rendered routes drop it before the provider); and
`x-request-id`, Envoy's own id for the request (its trace decision lives in it)."""
KEPT_FROM_PROVIDERS = frozenset(
    (CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING, RETRY_AFTER, "cache-control", "date")
)
"""Provider answer headers a client gets (beside those the gateway sets): nothing that names
the gateway's account, its limits, or sets state on the client (cookies)."""
ANSWER_REQUEST_ID = REQUEST_ID
"""On answers: the provider's own id for the call (OpenAI's, Anthropic's `request-id`, AWS's
`x-amzn-requestid`), under one name, for support cases."""

_GATEWAY_OWNED = frozenset(
    (
        *CREDENTIAL_HEADERS,
        "proxy-authorization",
        XFCC,
        COOKIE,
        GOOG_API_KEY,
        ANTHROPIC_VERSION,
        OPENAI_ORGANIZATION,
        OPENAI_PROJECT,
        CONTENT_TYPE,
        CONTENT_LENGTH,
        ACCEPT_ENCODING,
        CONTENT_ENCODING,
        USER_AGENT,
        "host",
        *LEFT_TO_ENVOY,
    )
)


def owned_by_gateway(name: str) -> bool:
    """Whether a request header is the gateway's alone to set or drop: a credential, the
    provider account, framing, routing (no configuration passes a client's copy on)."""
    return name in _GATEWAY_OWNED or name.startswith((":", INTERNAL_PREFIX, "x-envoy-", "x-amz-"))
