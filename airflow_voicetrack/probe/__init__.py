r"""
Check this provider's assumptions about Routee's voice tracking API against the real service.

Where Routee's documentation is silent this provider made decisions (see the documentation's
"Limits and API assumptions", ``docs/reference/limits.md``), and the emulator encodes the same
decisions, so the test suite cannot catch a wrong one. The probe asks the real service, with
read-only searches only (``POST /voice/tracking``, plus one token request), a bounded number of
them (``--max-requests``, default :data:`DEFAULT_MAX_REQUESTS`), and prints one row per
assumption: what it assumes, how it was tested, the result (``holds``, ``does not hold`` or
``could not tell``) and the evidence::

    python -m airflow_voicetrack.probe --conn-id voicetrack_default
    VOICETRACK_APP_SECRET=... python -m airflow_voicetrack.probe \\
        --host https://connect.routee.net --auth-url https://auth.routee.net/oauth/token --app-id ID

The second form reads no Airflow connection (the secret comes from an environment variable, never
from the command line). The exit status is 0 when nothing was found not to hold, 1 when something
does not hold, 2 when the probe could not run (bad arguments, credentials refused).

How each assumption is tested (all dates UTC; "now" is the start of the run, to the second):

* **range limits**: searches ``[now - N days, now)`` for N in :data:`RANGE_LADDER_DAYS`, one message
  each, until one is refused; the counts tell whether messages older than 7 days come back.
* **date filter honoured**: a one-day window :data:`PAST_WINDOW_DAYS` days ago must be empty while
  the widest range with messages is not, and the narrowest range must hold fewer messages than the
  widest. A service that does not know the parameters' names ignores them, with no error, and
  returns the whole history to every search: the provider would then write it into every object.
* **parameter names**: only when the date filter is not honoured (or our names are refused), the
  same two searches with the other spelling (:data:`~airflow_voicetrack.constants.OTHER_DATE_PARAMS`)
  tell which names the service honours.
* **campaign filter honoured**: a random campaign tracking id (``trackingId``) must match nothing.
* **page size**: a page of 2000, then of 2001, over the longest accepted range.
* **sort**: ``messageId,asc`` and ``messageId,desc`` (``status.date`` if ``messageId`` is refused).
* **end boundary**: a message's creation time is not in the payload, so it is found by
  bisection of ``from`` with an ``id`` filter (the largest start that still finds the message,
  to the second, then to the millisecond), then the range ending exactly at it, and 1 ms after.
* **two filters**: ``id is A`` with ``id is B`` (AND: nothing, OR: both), and ``id is A`` with
  ``status.status is_not <A's status>``.
* **tagged**: ``tagged=true`` and ``tagged=false`` must split the range, with and without campaign.
* **Unknown**: messages in ``Unknown`` are re-read after ``--unknown-wait`` seconds.
* **429**: every 429 met during the run, and its ``Retry-After``.
"""

from airflow_voicetrack.probe.checks import (
    CAMPAIGN_FILTER,
    DATE_FILTER,
    DEFAULT_UNKNOWN_WAIT,
    FAILS,
    HALF_OPEN,
    HOLDS,
    PARAMETER_NAMES,
    UNCLEAR,
    Context,
    Finding,
    check_campaign_filter,
    render,
    run,
)
from airflow_voicetrack.probe.cli import main
from airflow_voicetrack.probe.client import (
    DEFAULT_MAX_REQUESTS,
    BudgetExhausted,
    Page,
    ProbeClient,
    ProbeDriver,
)

__all__ = [
    "CAMPAIGN_FILTER",
    "DATE_FILTER",
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_UNKNOWN_WAIT",
    "FAILS",
    "HALF_OPEN",
    "HOLDS",
    "PARAMETER_NAMES",
    "UNCLEAR",
    "BudgetExhausted",
    "Context",
    "Finding",
    "Page",
    "ProbeClient",
    "ProbeDriver",
    "check_campaign_filter",
    "main",
    "render",
    "run",
]
