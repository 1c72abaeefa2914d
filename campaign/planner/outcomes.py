"""What a run reports: its outcome, its decisions and (dry runs, test sends) its messages.

Also the keys a run's rows are unique by: the slot key and the message idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

# Outcomes of plan_run, as RunReport.outcome.
PLANNED = "planned"
ALREADY_PLANNED = "already_planned"
PAUSED = "paused"
DRY_RUN = "dry_run"
TEST = "test"

TEST_SUFFIX = ":test"


@dataclass
class PlannedMessage:
    """One rendered message of a run (kept for dry runs, previews and test sends)."""

    user_id: int
    external_id: str
    name: str | None
    channel: str
    medium: str
    variant: str
    template: str
    locale: str
    address: str | None
    subject: str | None
    html: str | None
    text: str
    coupon_code: str | None
    percent_off: int | None
    products: list[dict[str, Any]]


@dataclass
class RunReport:
    """What one run decided.

    ``decisions`` has one row per user considered, in the run's order, with columns
    user_id, external_id, risk, tier, channel, status, skip_reason, variant,
    coupon_code, percent_off, products (shop product ids), subject, last_error, uplift
    and uplift_segment (the campaign's uplift model's, None without one), learning
    (the row is in the learning share), risk_reason (the churn model's reason) and
    address (the chosen channel's, unmasked: mask it before showing it to people who
    may not see it).
    ``messages`` holds rendered messages only for dry runs and test sends (at most
    ``render_limit`` of them). ``counts`` is what is stored in ``campaign_runs.counts``
    (``learning.queued`` and ``learning.held_out`` count the learning share's rows).
    """

    campaign: str
    slot: datetime
    as_of: datetime
    outcome: str
    run_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    messages: list[PlannedMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The one line about the order the audience was walked in (what it ranked by, and
    # why when that is not what the config asks); ``ranked_by``: risk, uplift or value.
    targeting: str | None = None
    ranked_by: str | None = None


def slot_key(slot: datetime) -> str:
    """The slot as it appears in idempotency keys: ``20261101T000000Z`` (UTC)."""
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def idempotency_key(campaign: str, slot: datetime, user_id: int, channel: str) -> str:
    """The unique key of one (campaign, slot, user, channel) message."""
    return f"{campaign}/{slot_key(slot)}/{user_id}/{channel}"


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
