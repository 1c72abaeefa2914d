"""Pure send-time rules: consent, quiet hours, expiry, backoff and Retry-After.

Nothing here touches the database, the network or the clock: ``now`` and the random
generator are arguments, so every rule is testable on its own (see
``tests/test_delivery_policy.py`` for the DST property tests).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Stored strings of ``campaign.db.models.SkipReason``; repeated here so this pure module
# does not import the ORM (and with it SQLAlchemy).
SKIP_SUPPRESSED = "suppressed"
SKIP_NO_CONSENT = "no_consent"
SKIP_NO_ADDRESS = "no_address"
SKIP_EXPIRED = "expired"
SKIP_FREQUENCY_CAPPED = "frequency_capped"


class Window(Protocol):
    """Anything with ``start`` and ``end`` local times (e.g. ``config.QuietHours``)."""

    @property
    def start(self) -> time: ...

    @property
    def end(self) -> time: ...


@dataclass(frozen=True)
class Recipient:
    """What the send-time re-check needs to know about one message's recipient.

    ``suppressed`` is true when a suppression matches the user or the address on this
    channel's medium (or ``all``); ``forgotten`` when the person was erased.
    """

    medium: str
    address: str | None
    consent_email: bool
    consent_sms: bool
    suppressed: bool
    forgotten: bool = False
    is_test: bool = False


def skip_reason(recipient: Recipient) -> str | None:
    """Why this message must not be sent now, or None when it may be sent.

    Seed-list test sends (``is_test``) go to staff addresses, so the user's consent does
    not apply to them; a suppressed address still wins.
    """
    if recipient.suppressed or recipient.forgotten:
        return SKIP_SUPPRESSED
    if not recipient.address or not recipient.address.strip():
        return SKIP_NO_ADDRESS
    if recipient.is_test:
        return None
    consent = recipient.consent_sms if recipient.medium == "sms" else recipient.consent_email
    if not consent:
        return SKIP_NO_CONSENT
    return None


def is_frequency_capped(
    channel: str,
    medium: str,
    sent_by_channel: Mapping[str, int],
    caps: Mapping[str, int],
    media: Mapping[str, str],
) -> bool:
    """Would one more message on ``channel`` exceed the recipient's frequency cap?

    ``sent_by_channel`` counts the recipient's messages already sent within the
    frequency window, by channel name (the sender adds those passed earlier in the same
    claim). ``caps`` is ``delivery.frequency_cap``: a cap keyed by the channel's name
    counts that channel only; else a cap keyed by its medium counts every channel of
    that medium (``media``: channel name → medium) - the planner's rule
    (``campaign.planner.audience``). No matching key: uncapped.
    """
    if channel in caps:
        return sent_by_channel.get(channel, 0) >= caps[channel]
    if medium in caps:
        count = sum(n for name, n in sent_by_channel.items() if media.get(name) == medium)
        return count >= caps[medium]
    return False


def resolve_timezone(name: str | None, fallback: str) -> ZoneInfo:
    """The user's IANA zone, or ``fallback`` (the shop's) when missing or invalid."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


def in_window(local: time, window: Window) -> bool:
    """Is the local wall-clock time inside the allowed window (start inclusive)?"""
    start, end = window.start, window.end
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _local_time(instant: datetime, tz: ZoneInfo) -> time:
    return instant.astimezone(tz).time().replace(tzinfo=None)


def is_allowed(instant: datetime, tz: ZoneInfo, window: Window) -> bool:
    """May a message be sent at the UTC-aware ``instant`` to someone living in ``tz``?"""
    return in_window(_local_time(instant, tz), window)


def _offset_changes(now: datetime, tz: ZoneInfo, horizon: timedelta) -> list[datetime]:
    """UTC instants in (now, now + horizon] where ``tz`` changes its UTC offset."""
    changes: list[datetime] = []
    step = timedelta(hours=1)
    lo = now
    while lo < now + horizon:
        hi = lo + step
        if lo.astimezone(tz).utcoffset() != hi.astimezone(tz).utcoffset():
            # Offsets change on whole seconds: bisect integer timestamps to the instant.
            a, b = int(lo.timestamp()), int(hi.timestamp()) + 1
            before = lo.astimezone(tz).utcoffset()
            while b - a > 1:
                mid = (a + b) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == before:
                    a = mid
                else:
                    b = mid
            changes.append(datetime.fromtimestamp(b, UTC))
        lo = hi
    return changes


def next_allowed_time(now: datetime, tz: ZoneInfo, window: Window) -> datetime:
    """The earliest instant at or after ``now`` (UTC-aware) inside the local window.

    Returns ``now`` itself when sending is allowed now. Correct across DST changes: the
    window opens either when the local clock reaches its start (the first occurrence of
    that wall time in a fall-back overlap) or when a DST jump lands the clock inside it
    (e.g. a start of 02:30 on a spring-forward night opens at 03:00).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if is_allowed(now, tz, window):
        return now
    today: date = now.astimezone(tz).date()
    candidates: list[datetime] = []
    for offset in range(-1, 3):
        day = today + timedelta(days=offset)
        for fold in (0, 1):
            local = datetime.combine(day, window.start, tzinfo=tz).replace(fold=fold)
            instant = local.astimezone(UTC)
            # Keep only real wall times: in a gap, astimezone shifts the clock.
            real = instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)
            if real and instant >= now and is_allowed(instant, tz, window):
                candidates.append(instant)
    for change in _offset_changes(now, tz, timedelta(days=2)):
        if is_allowed(change, tz, window):
            candidates.append(change)
    if not candidates:
        # Unreachable for a real zone and window; keep the message moving, not stuck.
        return now + timedelta(hours=1)
    return min(candidates)


def is_expired(now: datetime, expires_at: datetime | None) -> bool:
    """True when a message's send-by time has passed (None: never expires)."""
    return expires_at is not None and now >= expires_at


def retry_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before the next try after failed attempt number ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, capped at ``max_seconds``) with "equal
    jitter": a uniform draw in [half, full] of that delay, so a crowd of failures does not
    retry in lockstep. A provider's ``Retry-After`` is honoured as a floor.
    """
    exponent = min(max(attempt - 1, 0), 62)
    delay = min(max_seconds, base_seconds * (2.0**exponent))
    jittered = delay / 2 + rng.random() * delay / 2
    if retry_after is not None and retry_after > 0:
        return max(jittered, retry_after)
    return jittered


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for, or None.

    Accepts both forms of RFC 9110: delta-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``). A date in the past means 0; garbage means None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
