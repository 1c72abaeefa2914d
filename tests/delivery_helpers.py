"""Rows for delivery tests: users, a campaign run and queued outbox messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.config import ChannelConfig, Config, DeliveryConfig, QuietHours
from campaign.db.models import CampaignRun, Message, MessageStatus, Suppression, User

# 12:00 in Asia/Shanghai (the shop's default timezone): inside every default window.
NOON_SHANGHAI = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


class Clock:
    """A settable clock for ``drain_outbox(now=...)``."""

    def __init__(self, start: datetime = NOON_SHANGHAI) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += timedelta(**delta)


def make_user(session: Session, n: int, **overrides: Any) -> User:
    """A consenting user ``u<n>`` with an email and a phone."""
    values: dict[str, Any] = {
        "external_id": f"u{n}",
        "email": f"u{n}@example.com",
        "phone": f"+1555000{n:04d}",
        "name": f"User {n}",
        "consent_email": True,
        "consent_sms": True,
        "timezone": None,
        "attributes": {},
    }
    values.update(overrides)
    user = User(**values)
    session.add(user)
    session.flush()
    return user


def make_run(
    session: Session, campaign: str = "winback", slot: datetime = NOON_SHANGHAI
) -> CampaignRun:
    """A campaign run row."""
    run = CampaignRun(campaign=campaign, slot=slot, as_of=slot, status="done", counts={})
    session.add(run)
    session.flush()
    return run


def queue_message(
    session: Session, run: CampaignRun, user: User, channel: str = "hook", **overrides: Any
) -> Message:
    """A queued, rendered message for ``user`` on ``channel``."""
    values: dict[str, Any] = {
        "run_id": run.id,
        "user_id": user.id,
        "campaign": run.campaign,
        "channel": channel,
        "variant": "coupon",
        "template": "winback",
        "subject": f"We miss you, {user.name}",
        "body": f"<p>Hello {user.name}</p>",
        "text_body": f"Hello {user.name}",
        "products": [],
        "idempotency_key": f"{run.campaign}:{run.slot.isoformat()}:{user.id}:{channel}",
        "status": MessageStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": None,
        "expires_at": run.slot + timedelta(hours=48),
        "created_at": run.slot,
    }
    values.update(overrides)
    message = Message(**values)
    session.add(message)
    session.flush()
    return message


def suppress(session: Session, user: User, channel: str = "all") -> None:
    """Suppress ``user`` on ``channel``."""
    session.add(
        Suppression(
            user_id=user.id,
            channel=channel,
            reason="unsubscribed",
            source="test",
            created_at=NOON_SHANGHAI,
        )
    )
    session.flush()


def seed(engine: Engine, n: int, channel: str = "hook", **message_overrides: Any) -> list[int]:
    """``n`` consenting users with one queued message each; returns the message ids."""
    ids = []
    with Session(engine) as session:
        run = make_run(session)
        for i in range(n):
            user = make_user(session, i)
            ids.append(queue_message(session, run, user, channel, **message_overrides).id)
        session.commit()
    return ids


def delivery_config(channels: dict[str, ChannelConfig], **delivery: Any) -> Config:
    """A config with these channels and fast, test-friendly delivery settings."""
    values: dict[str, Any] = {
        "timeout_seconds": 0.5,
        "backoff_base_seconds": 30.0,
        "max_attempts": 4,
        "concurrency": 8,
        "batch_size": 50,
        "http_clients": 2,
        "http_connections_per_client": 4,
    }
    values.update(delivery)
    return Config(channels=channels, delivery=DeliveryConfig(**values))


def webhook(url: str, medium: str = "email", **extra: Any) -> ChannelConfig:
    """A webhook channel config posting to ``url``."""
    return ChannelConfig(kind="webhook", medium=medium, url=url, rate_per_second=10_000, **extra)


def statuses(engine: Engine) -> dict[int, tuple[str, str | None, int]]:
    """id → (status, skip_reason, attempts) of every message."""
    with Session(engine) as session:
        return {
            m.id: (m.status, m.skip_reason, m.attempts)
            for m in session.query(Message).order_by(Message.id)
        }


ALWAYS_OPEN = QuietHours(start=datetime.min.time(), end=datetime.min.time())


def fault_channel(kind: str, url: str, **extra: Any) -> ChannelConfig:
    """A channel of ``kind`` (webhook, twilio, sendgrid, smtp) at ``url``, named "text"
    by the fault tests; SendGrid takes 5 messages per request."""
    medium = "sms" if kind in ("webhook", "twilio") else "email"
    values: dict[str, Any] = {
        "kind": kind,
        "medium": medium,
        "url": url,
        "rate_per_second": 100.0,
        "from_address": "+15550009999" if medium == "sms" else "shop@shop.test",
    }
    if kind == "sendgrid":
        values.update(batch_size=5, secret="sg-key")
    if kind == "twilio":
        values.update(username="AC1", secret="token")
    values.update(extra)
    return ChannelConfig(**values)


def crash_child() -> None:
    """Subprocess entry of the SIGKILL test: ``URL SINK_URL CLOCK_OFFSET_SECONDS [KIND]``.

    Drains once with a clock shifted by the offset, so a restart can see the killed
    process's leases as expired without the test waiting for them. ``KIND`` is the
    channel's kind (default: webhook).
    """
    import sys

    from campaign.db.engine import make_engine
    from campaign.delivery.sender import drain_outbox

    url, sink_url, offset = sys.argv[1], sys.argv[2], float(sys.argv[3])
    kind = sys.argv[4] if len(sys.argv) > 4 else "webhook"
    engine = make_engine(url)
    config = delivery_config(
        {"text": fault_channel(kind, sink_url)},
        lease_seconds=5,
        batch_size=20,
        timeout_seconds=3.0,
        quiet_hours=ALWAYS_OPEN,
        quiet_hours_by_medium={},
    )
    shift = timedelta(seconds=offset)
    drain_outbox(engine, config, once=True, now=lambda: datetime.now(UTC) + shift)
    engine.dispose()
