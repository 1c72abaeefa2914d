"""A small shop whose past 50/50 test has a known answer, for targeting tests.

Every customer has one past order. Persuadables (120–270 days since that order when
the test was run) buy far more when messaged; sleeping dogs (big spenders outside that
window) buy far less; nobody else cares. Churn risk grows with the time since the
order, so ranking by risk walks the longest-lapsed first: mostly neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from campaign.db.models import (
    ChurnScore,
    Event,
    ExperimentAssignment,
    ModelVersion,
    User,
)

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
TESTED_AT = AS_OF - timedelta(days=30)


@dataclass(frozen=True)
class Planted:
    """The shop's truth: per shop id, its days since the order at the test, spend, and
    whether it is a persuadable or a sleeping dog."""

    days: dict[str, float]
    spend: dict[str, float]
    persuadable: set[str]
    dog: set[str]


def build_shop(engine: Engine, n: int, *, seed: int = 5, campaign: str = "c") -> Planted:
    """Users ``c0``..., their order, a churn score at :data:`AS_OF` and the imported test."""
    rng = np.random.default_rng(seed)
    days = rng.uniform(10, 570, n)
    spend = rng.uniform(10, 400, n)
    treated = rng.random(n) < 0.5
    persuadable = (days > 120) & (days <= 270)
    dog = (spend > 300) & ~persuadable
    rate = np.where(treated, np.where(dog, 0.05, np.where(persuadable, 0.45, 0.1)),
                    np.where(dog, 0.45, np.where(persuadable, 0.05, 0.1)))
    converted = rng.random(n) < rate
    ids = [f"c{i}" for i in range(n)]
    users: list[dict[str, Any]] = [{
        "external_id": key, "email": f"{key}@example.com", "name": f"Name {key}",
        "locale": "en", "timezone": "Asia/Shanghai", "consent_email": True,
        "consent_sms": False, "attributes": {},
    } for key in ids]
    with engine.begin() as connection:
        connection.execute(insert(User), users)
        by_key = dict(connection.execute(select(User.external_id, User.id)).all())
        model = connection.execute(
            insert(ModelVersion).values(
                kind="churn", trained_at=AS_OF, as_of=AS_OF, horizon_days=90, params={},
                metrics={}, artifact=b"", library_versions={}, active=True,
            )
        ).inserted_primary_key[0]
        connection.execute(insert(Event), [{
            "user_id": by_key[key], "type": "purchase",
            "ts": TESTED_AT - timedelta(days=float(days[i])),
            "amount_cents": int(spend[i] * 100), "quantity": 1,
            "source_event_id": f"order-{key}",
        } for i, key in enumerate(ids)])
        connection.execute(insert(ChurnScore), [{
            "user_id": by_key[key], "model_version_id": model, "as_of": AS_OF,
            "risk": float(min(0.99, 0.5 + days[i] / 1200)),
            "tier": "high" if days[i] > 240 else "medium", "reason": "a while since the order",
        } for i, key in enumerate(ids)])
        connection.execute(insert(ExperimentAssignment), [{
            "campaign": campaign, "user_id": by_key[key],
            "group": "treatment" if treated[i] else "control", "assigned_at": TESTED_AT,
            "converted": bool(converted[i]),
            "revenue_cents": 4_000 if converted[i] else 0, "visited": None,
            "imported_at": AS_OF,
        } for i, key in enumerate(ids)])
    return Planted(
        days=dict(zip(ids, days.tolist(), strict=True)),
        spend=dict(zip(ids, spend.tolist(), strict=True)),
        persuadable={key for key, p in zip(ids, persuadable, strict=True) if p},
        dog={key for key, d in zip(ids, dog, strict=True) if d},
    )
