"""The normalized inbound event and the engagement rules (pure).

Every provider payload, every unsubscribe click and every ``responses.csv`` row becomes
an :class:`InboundEvent` with one of the :class:`ResponseType` values; the stored
``responses.type`` is that value.

Engagement only moves forward: ``delivered`` → ``opened`` → ``clicked`` → ``converted``;
``bounced``, ``complained`` and ``unsubscribed`` are terminal (reached from any
non-terminal state, never left). A late ``delivered`` never overwrites ``clicked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from campaign.common.optout import DEFAULT_STOP_MATCHER, StopWords
from campaign.db.models import Engagement


class ResponseType(StrEnum):
    """What happened to a message, as stored in ``responses.type``."""

    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    # A hard (permanent) bounce: the address does not exist; it is suppressed.
    BOUNCED = "bounced"
    # A soft (temporary) bounce: mailbox full, carrier unreachable; kept, nothing else.
    SOFT_BOUNCED = "soft_bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    REDEEMED = "redeemed"
    PURCHASED = "purchased"
    # An inbound SMS that is not a stop word.
    REPLIED = "replied"


# Other spellings providers and exports use for the same things.
_ALIASES: dict[str, ResponseType] = {
    "delivery": ResponseType.DELIVERED,
    "open": ResponseType.OPENED,
    "read": ResponseType.OPENED,
    "click": ResponseType.CLICKED,
    "bounce": ResponseType.BOUNCED,
    "hard_bounce": ResponseType.BOUNCED,
    "hard_bounced": ResponseType.BOUNCED,
    "soft_bounce": ResponseType.SOFT_BOUNCED,
    "deferred": ResponseType.SOFT_BOUNCED,
    "complaint": ResponseType.COMPLAINED,
    "spam": ResponseType.COMPLAINED,
    "spamreport": ResponseType.COMPLAINED,
    "spam_report": ResponseType.COMPLAINED,
    "unsubscribe": ResponseType.UNSUBSCRIBED,
    "redeem": ResponseType.REDEEMED,
    "purchase": ResponseType.PURCHASED,
    "converted": ResponseType.PURCHASED,
    "reply": ResponseType.REPLIED,
}

ENGAGEMENT_OF: dict[ResponseType, Engagement] = {
    ResponseType.DELIVERED: Engagement.DELIVERED,
    ResponseType.OPENED: Engagement.OPENED,
    ResponseType.CLICKED: Engagement.CLICKED,
    ResponseType.REDEEMED: Engagement.CONVERTED,
    ResponseType.PURCHASED: Engagement.CONVERTED,
    ResponseType.BOUNCED: Engagement.BOUNCED,
    ResponseType.COMPLAINED: Engagement.COMPLAINED,
    ResponseType.UNSUBSCRIBED: Engagement.UNSUBSCRIBED,
}

SUPPRESSING: dict[ResponseType, str] = {
    ResponseType.UNSUBSCRIBED: "unsubscribed",
    ResponseType.COMPLAINED: "complained",
    ResponseType.BOUNCED: "hard_bounce",
}

FORWARD_ORDER: tuple[Engagement, ...] = (
    Engagement.DELIVERED,
    Engagement.OPENED,
    Engagement.CLICKED,
    Engagement.CONVERTED,
)
TERMINAL: frozenset[Engagement] = frozenset(
    {Engagement.BOUNCED, Engagement.COMPLAINED, Engagement.UNSUBSCRIBED}
)



def canonical_type(text: str) -> ResponseType | None:
    """The response type named by ``text`` (``"opened"``, ``"open"``, ``"email.opened"``,
    ``"Spam Report"``...), or None when it names none."""
    word = text.strip().lower().replace("-", "_").replace(" ", "_")
    word = word.rsplit(".", 1)[-1]
    try:
        return ResponseType(word)
    except ValueError:
        return _ALIASES.get(word)


def is_stop_word(body: str, stop_words: StopWords | None = None) -> bool:
    """Whether an inbound SMS body is an opt-out (:class:`StopWords`; the defaults
    unless ``stop_words`` is given)."""
    return (stop_words or DEFAULT_STOP_MATCHER).matches(body)


def next_engagement(current: str | None, incoming: Engagement) -> Engagement | None:
    """The engagement after ``incoming`` arrives at a message in state ``current``;
    None when it must not change (a step back, or the message is already terminal)."""
    if current in TERMINAL:
        return None
    if incoming in TERMINAL:
        return incoming
    if current is None or current not in FORWARD_ORDER:
        return incoming
    if FORWARD_ORDER.index(incoming) > FORWARD_ORDER.index(Engagement(current)):
        return incoming
    return None


def reachable_from(target: Engagement) -> tuple[str, ...]:
    """The stored engagement values (besides NULL) from which ``target`` may be reached:
    the SQL guard of the forward-only update (race-free: checked in the UPDATE itself)."""
    if target in TERMINAL:
        return tuple(FORWARD_ORDER)
    return tuple(FORWARD_ORDER[: FORWARD_ORDER.index(target)])


@dataclass(frozen=True)
class InboundEvent:
    """One provider event, normalized.

    ``event_id`` is the provider's unique id (the dedupe key, ``provider_event_id``);
    ``ts`` is aware UTC. The message is named by whichever reference the provider
    echoes: our ``message_id`` (``messages.id``), our ``idempotency_key`` or the
    provider's ``provider_message_id``. ``address`` is the recipient (email or phone)
    when the provider names it; ``medium`` is ``email``/``sms`` when the provider
    implies it. ``user_ref`` (shop user id) and ``channel`` come from unsubscribe links.
    ``payload`` is what is stored in ``responses.payload`` (never a raw address).
    """

    provider: str
    event_id: str
    type: ResponseType
    ts: datetime
    message_id: int | None = None
    idempotency_key: str | None = None
    provider_message_id: str | None = None
    address: str | None = None
    medium: str | None = None
    user_ref: str | None = None
    channel: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def message_number(ref: object) -> int | None:
    """``ref`` as a ``messages.id`` when it can be one (a bigint), else None."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if 0 < ref < 2**63 else None
    if isinstance(ref, str):
        text = ref.strip()
        if text.isascii() and text.isdecimal() and len(text) <= 18:
            return int(text) or None
    return None
