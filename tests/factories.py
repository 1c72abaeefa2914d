"""Plain factory functions for tests: valid defaults, override what the test is about.

Each one adds rows to ``session`` and flushes (so ids are set) without committing;
the caller's ``session_scope`` or ``session.commit()`` decides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from campaign.db.models import Event, EventType, Product, Suppression, User

_sequence = itertools.count(1)
DEFAULT_TS = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def make_user(session: Session, **overrides: Any) -> User:
    """A user who consents to email and SMS, with an address for both."""
    n = next(_sequence)
    values: dict[str, Any] = {
        "external_id": f"u{n}",
        "email": f"user{n}@example.com",
        "phone": f"+100000{n:05d}",
        "name": f"User {n}",
        "locale": "en",
        "timezone": "UTC",
        "consent_email": True,
        "consent_sms": True,
        "created_at": DEFAULT_TS - timedelta(days=365),
        "attributes": {},
    }
    values.update(overrides)
    user = User(**values)
    session.add(user)
    session.flush()
    return user


def make_product(session: Session, **overrides: Any) -> Product:
    """An in-stock product priced 19.90."""
    n = next(_sequence)
    values: dict[str, Any] = {
        "external_id": f"p{n}",
        "name": f"Product {n}",
        "category": "shoes",
        "brand": "Acme",
        "price_cents": 1990,
        "tags": ["new"],
        "in_stock": True,
        "url": f"https://shop.example/p{n}",
        "attributes": {},
    }
    values.update(overrides)
    product = Product(**values)
    session.add(product)
    session.flush()
    return product


def make_events(
    session: Session,
    user: User,
    specs: Iterable[Mapping[str, Any]] = ({},),
    **defaults: Any,
) -> list[Event]:
    """Events of ``user``: one per spec (a dict of column overrides), each defaulting
    to a ``view`` at :data:`DEFAULT_TS`. A purchase without ``amount_cents`` gets the
    product's price (or 1000) times its quantity."""
    events = []
    for spec in specs:
        values: dict[str, Any] = {
            "user_id": user.id,
            "product_id": None,
            "type": EventType.VIEW.value,
            "ts": DEFAULT_TS,
            "quantity": 1,
            "source_event_id": f"test-{next(_sequence)}",
        }
        values.update(defaults)
        values.update(spec)
        product = values.pop("product", None)
        if product is not None:
            values["product_id"] = product.id
        if values["type"] == EventType.PURCHASE and values.get("amount_cents") is None:
            price = product.price_cents if product is not None and product.price_cents else 1000
            values["amount_cents"] = price * values["quantity"]
        event = Event(**values)
        session.add(event)
        events.append(event)
    session.flush()
    return events


def make_suppression(session: Session, user: User | None = None, **overrides: Any) -> Suppression:
    """A suppression of ``user`` on all channels (an unsubscribe)."""
    values: dict[str, Any] = {
        "user_id": user.id if user is not None else None,
        "channel": "all",
        "reason": "unsubscribed",
        "source": "test",
        "created_at": DEFAULT_TS,
    }
    values.update(overrides)
    suppression = Suppression(**values)
    session.add(suppression)
    session.flush()
    return suppression
