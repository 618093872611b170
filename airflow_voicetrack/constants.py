"""Facts about Routee's voice tracking API shared by the client and the emulator.

See ``docs/reference/limits.md`` ("Limits and API assumptions") for the points where Routee's
docs are silent or disagree and the decision taken here.
"""

from __future__ import annotations

DEFAULT_API_URL = "https://connect.routee.net"
DEFAULT_TOKEN_URL = "https://auth.routee.net/oauth/token"

SEARCH_PATH = "/voice/tracking"
MESSAGE_PATH = "/voice/tracking/{message_id}"
CONVERSATION_PATH = "/voice/tracking/conversation/{conversation_tracking_id}"
CAMPAIGN_PATH = "/voice/tracking/campaign/{campaign_id}"

# The search's query parameters, named as in the published, machine-generated reference of Routee's
# native API, built from the official page docs.routee.net/reference/calltracking (the seed page lost
# the names; see routee-voice-api.md, section 2). The SMS search (POST /sms/tracking) names its dates
# dateStart/dateEnd: those are not the voice names.
DATE_START_PARAM = "from"
DATE_END_PARAM = "to"
CAMPAIGN_TRACKING_ID_PARAM = "trackingId"
#: Every query parameter of ``POST /voice/tracking``.
SEARCH_PARAMS: tuple[str, ...] = (
    DATE_START_PARAM,
    DATE_END_PARAM,
    "page",
    "size",
    "sort",
    CAMPAIGN_TRACKING_ID_PARAM,
    "tagged",
)
#: Every query parameter of the campaign and conversation listings (``GET``, paged).
LISTING_PARAMS: tuple[str, ...] = ("page", "size", "sort")
#: The other spelling of the date range (the SMS twin's): what the probe tries when ours is ignored.
OTHER_DATE_PARAMS: tuple[str, str] = ("dateStart", "dateEnd")

#: Field names the search filter accepts (``fieldName``).
FILTER_FIELDS: tuple[str, ...] = (
    "id",
    "recipient",
    "from",
    "collectedTones",
    "groups",
    "country",
    "status.status",
    "campaign",
)
#: Operators the search filter accepts (``searchOperator``); ``is`` when omitted.
SEARCH_OPERATORS: tuple[str, ...] = ("is", "is_not", "contains", "starts_with", "ends_with")
DEFAULT_SEARCH_OPERATOR = "is"

DEFAULT_PAGE_SIZE_API = 20
#: Largest page the service accepts (decision: as documented for the SMS twin).
MAX_PAGE_SIZE = 2000


INTERMEDIATE_STATUSES: frozenset[str] = frozenset({"Queued", "Initiated", "Ringing", "InProgress"})
FINAL_STATUSES: frozenset[str] = frozenset(
    {"Completed", "Busy", "NoAnswer", "Failed", "Unsent", "Terminated"}
)
#: Routee's docs disagree on whether ``Unknown`` is final; one copy of the statuses page says
#: intermediate, another final. It is terminal by default so a wait never hangs on a message
#: that will not change again.
DEFAULT_TERMINAL_STATUSES: frozenset[str] = FINAL_STATUSES | {"Unknown"}
ALL_STATUSES: frozenset[str] = INTERMEDIATE_STATUSES | DEFAULT_TERMINAL_STATUSES
#: The order a message moves through before it reaches a final status.
STATUS_PROGRESSION: tuple[str, ...] = ("Queued", "Initiated", "Ringing", "InProgress")

# Connection defaults: the one place the hook's settings, the retry policy and the provider info's
# connection form read them from.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: The most requests one search keeps in flight when neither the connection nor the task says
#: otherwise: a ceiling, since the adaptive limiter starts at one and grows only while responses stay
#: fast and unthrottled (see docs/rate-limits.md for why 8).
DEFAULT_MAX_CONCURRENCY = 8
#: The operator's ``pool_slots`` when neither it nor ``max_concurrency`` is given: the default before
#: the limiter, kept so that existing pools keep working.
DEFAULT_POOL_SLOTS = 4
DEFAULT_MAX_RETRIES = 8
DEFAULT_MAX_RETRY_WAIT = 60.0
DEFAULT_MAX_RETRY_TIME = 600.0
DEFAULT_WINDOW_HOURS = 24.0
DEFAULT_REQUEST_DEADLINE = 300.0
#: A request may get a new token and be sent again this many times on a 401/403 of a token that has
#: served no 2xx before it fails: the credentials or the permissions are wrong.
MAX_TOKEN_REFRESHES = 3
#: A 401/403 of a token that has served a 2xx is an expiry or a revocation (tokens can be revoked
#: while several pages are in flight, e.g. during a credential rotation): it costs no credential
#: budget, and one request renews its token this many times at most (a guard, never met in practice).
MAX_TOKEN_RENEWALS = 10
