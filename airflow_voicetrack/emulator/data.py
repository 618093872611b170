"""Deterministic synthetic voice messages.

Every message is a pure function of ``(seed, seq)``: its sequence number picks its content from a
BLAKE2 digest, so any message can be built on demand, in any order, and the same seed always gives
the same data set. Building is lazy (see :mod:`airflow_voicetrack.emulator.store`) so the emulator
starts in well under a second even with 100k messages.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from airflow_voicetrack.constants import STATUS_PROGRESSION


@dataclass(frozen=True)
class Campaign:
    """
    A voice campaign.

    ``tracking_id`` is what the search's ``trackingId`` and the campaign endpoint take, ``name`` is what a
    message's ``campaign`` field shows.
    """

    tracking_id: str
    name: str


def _campaign(name: str) -> Campaign:
    return Campaign(str(uuid.uuid5(uuid.NAMESPACE_URL, f"voicetrack-campaign:{name}")), name)


CAMPAIGNS: tuple[Campaign, ...] = tuple(
    _campaign(name)
    for name in (
        "Black Friday 2026",
        "Appointment reminders",
        "Payment due",
        "Customer survey Q4",
        "Delivery notifications",
        "Welcome calls",
        "Winback",
        "Service outage notice",
    )
)
CAMPAIGNS_BY_ID: dict[str, Campaign] = {c.tracking_id: c for c in CAMPAIGNS}

#: (ISO country, calling code, national mobile prefix, digits after the prefix, TTS language,
#: price per minute, weight)
COUNTRIES: tuple[tuple[str, str, str, int, str, float, int], ...] = (
    ("GR", "30", "69", 8, "el-GR", 0.021, 30),
    ("GB", "44", "7", 9, "en-GB", 0.018, 15),
    ("DE", "49", "15", 9, "de-DE", 0.024, 10),
    ("FR", "33", "6", 8, "fr-FR", 0.025, 8),
    ("IT", "39", "3", 9, "it-IT", 0.023, 8),
    ("ES", "34", "6", 8, "es-ES", 0.022, 7),
    ("US", "1", "", 10, "en-US", 0.012, 10),
    ("CY", "357", "9", 7, "el-GR", 0.030, 5),
    ("NL", "31", "6", 8, "nl-NL", 0.026, 4),
    ("RO", "40", "7", 8, "ro-RO", 0.028, 3),
)
_COUNTRY_TABLE: tuple[int, ...] = tuple(i for i, c in enumerate(COUNTRIES) for _ in range(c[6]))

#: Caller ids our applications dial from (E.164 without ``+``).
SENDERS: tuple[str, ...] = ("302111989100", "302111989101", "447700900123", "4930901820", "13125550100")
GROUPS: tuple[str, ...] = ("customers", "vip", "newsletter", "reminders", "leads", "staff", "churn-risk")
APPLICATIONS: tuple[str, ...] = ("default-app", "crm-integration", "helpdesk")

#: Final statuses with their weight (out of 100): most calls are answered.
FINAL_STATUS_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("Completed", 62),
    ("NoAnswer", 14),
    ("Busy", 9),
    ("Failed", 5),
    ("Unsent", 3),
    ("Terminated", 3),
    ("Unknown", 4),
)
_FINAL_TABLE: tuple[str, ...] = tuple(s for s, w in FINAL_STATUS_WEIGHTS for _ in range(w))

_TTS_TEXT: dict[str, str] = {
    "el-GR": "Γεια σας, αυτή είναι μια αυτόματη κλήση.",
    "en-GB": "Hello, this is an automated call.",
    "en-US": "Hi, this is an automated call.",
    "de-DE": "Hallo, dies ist ein automatischer Anruf.",
    "fr-FR": "Bonjour, ceci est un appel automatique.",
    "it-IT": "Buongiorno, questa è una chiamata automatica.",
    "es-ES": "Hola, esta es una llamada automática.",
    "nl-NL": "Hallo, dit is een automatisch gesprek.",
    "ro-RO": "Bună ziua, acesta este un apel automat.",
}

#: Seconds after creation at which a call is initiated and starts ringing (the call timeline;
#: ``status.date`` of each status is the creation time plus its offset).
INITIATED_AFTER_S = 1
RINGING_AFTER_S = 2


_DAY_MS = 86_400_000
_days: dict[int, str] = {}


def format_timestamp(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with milliseconds, e.g. ``2026-11-01T00:00:12.345Z``.

    :param ms: milliseconds since the epoch.
    """
    day, rest = divmod(ms, _DAY_MS)
    date = _days.get(day)
    if date is None:
        date = _days[day] = datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{date}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def random_uuid(digest: bytes) -> str:
    """A version-4 UUID string built from the first 16 bytes of ``digest``.

    :param digest: at least 16 bytes.
    """
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[digest[8] & 3]}{h[17:20]}-{h[20:32]}"


def message_digest(seed: int, seq: int) -> bytes:
    """The 64 bytes all of message ``seq``'s content is drawn from.

    :param seed: data set seed.
    :param seq: message sequence number (0-based; arrivals continue after the initial ones).
    """
    return hashlib.blake2b(f"{seed}:{seq}".encode(), digest_size=64).digest()


def conversation_root_id(digest: bytes) -> str:
    """The ``conversationTrackingId`` of a conversation whose first dial part has ``digest``.

    :param digest: the first part's :func:`message_digest`.
    """
    return random_uuid(hashlib.blake2b(digest, digest_size=16).digest())


def continues_conversation(digest: bytes) -> bool:
    """Whether a message is a further dial part of the previous message's conversation (~10%).

    :param digest: the message's :func:`message_digest`.
    """
    return digest[63] < 26


@dataclass
class MessageRecord:
    """One synthetic message: its final document plus what the emulator needs to evolve it.

    :param doc: the message object as the API returns it once final.
    :param campaign_id: tracking id of its campaign, or ``None`` when untagged.
    :param settle_fraction: where in ``[0, 1]`` of ``--settle-seconds`` it reaches its final status.
    :param ringing_s: seconds it rang before the final status (for ``status.date`` of InProgress).
    """

    doc: dict
    campaign_id: str | None
    settle_fraction: float
    ringing_s: int

    @property
    def final_status(self) -> str:
        """The status the message ends in."""
        return str(self.doc["status"]["status"])

    def intermediate_doc(self, stage: int, created_ms: int) -> dict:
        """
        Return the message as it looks while in ``STATUS_PROGRESSION[stage]``.

        No duration, price, recordings, tones or ``answeredBy`` yet.

        :param stage: index into :data:`~airflow_voicetrack.constants.STATUS_PROGRESSION`.
        :param created_ms: its creation time (epoch ms).
        """
        offsets = (0, INITIATED_AFTER_S, RINGING_AFTER_S, RINGING_AFTER_S + self.ringing_s)
        doc = dict(self.doc)
        doc["status"] = {
            "date": format_timestamp(created_ms + offsets[stage] * 1000),
            "status": STATUS_PROGRESSION[stage],
        }
        doc["duration"] = 0
        doc["price"] = 0.0
        doc["recordings"] = []
        doc.pop("collectedTones", None)
        doc.pop("answeredBy", None)
        return doc


def build_message(digest: bytes, created_ms: int, conversation_id: str) -> MessageRecord:
    """Build the message drawn from ``digest`` with the given creation time and conversation.

    :param digest: the message's :func:`message_digest`.
    :param created_ms: creation time, epoch milliseconds.
    :param conversation_id: its ``conversationTrackingId``.
    """
    message_id = random_uuid(digest)
    # Each choice reads its own bytes of the digest (modulo bias is irrelevant here).
    b = digest
    country, calling_code, mobile_prefix, digits, language, per_minute, _ = COUNTRIES[
        _COUNTRY_TABLE[int.from_bytes(b[32:34]) % len(_COUNTRY_TABLE)]
    ]
    first_digit = "" if mobile_prefix else str(2 + b[39] % 8)
    rest = digits - len(first_digit)
    customer = f"{calling_code}{mobile_prefix}{first_digit}{int.from_bytes(b[34:39]) % 10**rest:0{rest}d}"
    sender = SENDERS[b[39] // 8 % len(SENDERS)]
    inbound = b[40] < 13
    campaign = CAMPAIGNS[b[41] % len(CAMPAIGNS)] if b[42] < 192 and not inbound else None
    groups = sorted({GROUPS[g % len(GROUPS)] for g in b[44 : 44 + b[43] % 4]})
    final_status = _FINAL_TABLE[int.from_bytes(b[47:49]) % len(_FINAL_TABLE)]
    answered = final_status == "Completed"
    duration = 3 + b[49] % 60 + (b[50] % 60) * (b[33] % 10) if answered else 0
    charge_interval = 60 if b[51] & 1 else 1
    price = round(math.ceil(duration / charge_interval) * charge_interval / 60 * per_minute, 4)
    ringing_s = 2 + b[52] % 28
    plays_file = b[53] < 77
    is_ivr = b[54] < 102
    tones = str(int.from_bytes(b[55:57]))[: 1 + b[58] % 4] + ("#" if b[58] & 4 else "")
    recorded = answered and b[59] < 64
    settle_fraction = int.from_bytes(b[60:62]) / 65_535
    application = APPLICATIONS[b[62] % len(APPLICATIONS)]
    gender = "female" if b[62] & 128 else "male"
    answered_by = ("HUMAN", "HUMAN", "HUMAN", "MACHINE", "UNKNOWN")[b[57] % 5]

    final_ms = created_ms + (RINGING_AFTER_S + ringing_s + duration) * 1000
    slug = campaign.name.lower().replace(" ", "-") if campaign else "prompt"
    doc: dict = {
        "messageId": message_id,
        "conversationTrackingId": conversation_id,
        "to": sender if inbound else customer,
        "from": customer if inbound else sender,
        "groups": groups,
        "country": country,
        "status": {"date": format_timestamp(final_ms), "status": final_status},
        "campaign": campaign.name if campaign else None,
        "applicationName": application,
        "originatingService": "Campaign" if campaign else "Voice",
        "direction": "Inbound" if inbound else "Outbound",
        "duration": duration,
        "fileURL": f"https://files.routee.net/voice/{slug}.wav" if plays_file else None,
        "message": None
        if plays_file
        else {"gender": gender, "language": language, "text": _TTS_TEXT[language]},
        "price": price,
        "chargeInterval": charge_interval,
        "recordings": [],
    }
    if answered and is_ivr:
        doc["collectedTones"] = tones
    if answered:
        doc["answeredBy"] = answered_by
    if recorded:
        start_ms = created_ms + (RINGING_AFTER_S + ringing_s) * 1000
        doc["recordings"] = [
            {
                "trackingId": random_uuid(digest[16:32]),
                "start": format_timestamp(start_ms),
                "end": format_timestamp(final_ms),
                "from": doc["from"],
                "to": doc["to"],
                "url": f"https://files.routee.net/recordings/{message_id}.wav",
                "voiceTrackingIds": [message_id],
                "conversationTrackingId": conversation_id,
                "duration": duration,
            }
        ]
    return MessageRecord(doc, campaign.tracking_id if campaign else None, settle_fraction, ringing_s)
