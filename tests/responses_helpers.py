"""Helpers of the response-intake tests: a config with secrets, sent messages, signing."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.common import signing
from campaign.config import Config
from campaign.db.models import CampaignRun, Message, Response, Suppression, User

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy0xMjM0NTY3ODkw"  # base64 of a test key
OLD_SECRET = "previous-secret"
TWILIO_TOKEN = "twilio-auth-token"
SENDGRID_SECRET = "sendgrid-shared-secret"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_keys = itertools.count(1)


def make_config(**server: Any) -> Config:
    """A config whose server accepts :data:`SECRET` and :data:`OLD_SECRET` (rotation),
    with an email webhook channel, a twilio SMS channel and a sendgrid channel."""
    values: dict[str, Any] = {
        "secrets": [SECRET, OLD_SECRET],
        "twilio_auth_token": TWILIO_TOKEN,
        "sendgrid_secret": SENDGRID_SECRET,
        "max_body_bytes": 4096,
    }
    values.update(server)
    return Config.model_validate(
        {
            "shop": {
                "name": "Test Shop",
                "base_url": "https://shop.example",
                "default_locale": "en",
            },
            "channels": {
                "email": {"kind": "webhook", "medium": "email", "url": "http://127.0.0.1:9/x"},
                "sms": {"kind": "twilio", "medium": "sms", "url": "http://127.0.0.1:9/y"},
                "bulkmail": {"kind": "sendgrid", "medium": "email", "url": "http://127.0.0.1:9/z"},
            },
            "server": values,
        }
    )


def make_sent_message(
    session: Session, user: User, *, channel: str = "email", **overrides: Any
) -> Message:
    """A sent message of ``user`` (with its run), flushed so its id is set."""
    n = next(_keys)
    run = CampaignRun(
        campaign="winback", slot=NOW - timedelta(days=1, minutes=n), as_of=NOW, status="done"
    )
    session.add(run)
    session.flush()
    values: dict[str, Any] = {
        "run_id": run.id,
        "user_id": user.id,
        "campaign": "winback",
        "channel": channel,
        "variant": "a",
        "subject": f"Hello {user.name}",
        "body": f"<p>Dear {user.name}</p>",
        "text_body": f"Dear {user.name}",
        "idempotency_key": f"winback:{n}:{user.id}:{channel}",
        "status": "sent",
        "created_at": NOW - timedelta(days=1),
        "sent_at": NOW - timedelta(hours=20),
        "provider_message_id": f"prov-{n}",
    }
    values.update(overrides)
    message = Message(**values)
    session.add(message)
    session.flush()
    return message


def signed(
    body: dict[str, Any] | bytes, event_id: str, *, secret: str = SECRET, at: datetime = NOW
) -> tuple[bytes, dict[str, str]]:
    """A JSON body and its Standard Webhooks headers."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = signing.sign_headers(secret, event_id, int(at.timestamp()), raw)
    headers["content-type"] = "application/json"
    return raw, headers


def count_responses(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Response)).scalar_one())


def engagement_of(engine: Engine, message_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(Message.engagement).where(Message.id == message_id)
        ).scalar_one()


def suppressions(engine: Engine) -> list[tuple[int | None, str | None, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Suppression.user_id,
                Suppression.address_hash,
                Suppression.channel,
                Suppression.reason,
            ).order_by(Suppression.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]
