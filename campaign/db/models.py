"""ORM classes for every table of the data model (see docs/data-model.md).

Conventions: surrogate integer keys (``id``) with the shop's own identifiers kept as
``external_id``; money is integer minor units (``*_cents``), never a float; every
timestamp is :class:`~campaign.db.base.UTCDateTime`; statuses are ``StrEnum`` values
stored as plain strings so adding one never needs a database enum migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaign.db.base import Base, BigId, LongBinary, LongText, UTCDateTime


class EventType(StrEnum):
    """Kinds of shop events the product understands."""

    VIEW = "view"
    CART = "cart"
    PURCHASE = "purchase"
    SEARCH = "search"
    VISIT = "visit"


class MessageStatus(StrEnum):
    """Our lifecycle of an outbox row (docs/data-model.md)."""

    HELD_OUT = "held_out"
    SKIPPED = "skipped"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


class SkipReason(StrEnum):
    """Why a considered user got no message in a run."""

    SUPPRESSED = "suppressed"
    NO_CONSENT = "no_consent"
    NO_ADDRESS = "no_address"
    FREQUENCY_CAPPED = "frequency_capped"
    COOLDOWN = "cooldown"
    TEMPLATE_ERROR = "template_error"
    EXPIRED = "expired"
    BUDGET = "budget"
    RECIPIENT_CAP = "recipient_cap"
    INVALID_TIMEZONE = "invalid_timezone"
    PAUSED = "paused"
    SLEEPING_DOG = "sleeping_dog"


class Engagement(StrEnum):
    """The customer's lifecycle of a message, from responses; only moves forward."""

    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    CONVERTED = "converted"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


class RunStatus(StrEnum):
    """State of one campaign run (one campaign at one slot)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    MISSED = "missed"


class User(Base):
    """A shop customer. Missing consent means no consent."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    # E.164 when it parses (campaign.common.contacts); ``phone_original`` is what the shop gave.
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_original: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Product(Base):
    """An item of the catalogue."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(120))
    brand: Mapped[str | None] = mapped_column(String(120))
    price_cents: Mapped[int | None] = mapped_column(BigInteger)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    url: Mapped[str | None] = mapped_column(String(500))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Event(Base):
    """Something a user did. Purchases sharing an ``order_id`` form one order."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id_ts", "user_id", "ts"),
        # The audience's spend of the lookback window (migration 0014).
        Index("ix_events_type_ts", "type", "ts", "user_id", "amount_cents"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[str | None] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    # The file's event_id, or a content hash when the file has none: re-imports dedupe.
    source_event_id: Mapped[str] = mapped_column(String(128), unique=True)


class Segment(Base):
    """A user's behavioural segment as of a time (from the profile's clustering)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("user_id", "as_of"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    name: Mapped[str] = mapped_column(String(64))


class ModelVersion(Base):
    """A trained model, its artifact stored in the database so every host can load it."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    horizon_days: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact: Mapped[bytes] = mapped_column(LongBinary)
    # HMAC of the artifact with a key kept outside the database (campaign.churn.artifacts);
    # NULL for rows stored before artifacts were signed (`campaign models sign`).
    artifact_signature: Mapped[str | None] = mapped_column(String(128))
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class ChurnScore(Base):
    """One user's churn risk from one model version as of a time."""

    __tablename__ = "churn_scores"
    __table_args__ = (UniqueConstraint("user_id", "model_version_id", "as_of"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    risk: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(LongText)


class CampaignRun(Base):
    """One execution of one campaign at one scheduled slot; (campaign, slot) is unique."""

    __tablename__ = "campaign_runs"
    __table_args__ = (UniqueConstraint("campaign", "slot"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(LongText)
    # The campaign's holdout share when the run was planned: every row's probability of
    # being held out (NULL for runs planned before it was recorded).
    holdout_share: Mapped[float | None] = mapped_column(Float)
    # What the audience was ordered by ("risk", "uplift", "value"; NULL before it was
    # recorded) and, when it differs from the config (no uplift model yet), why.
    ranked_by: Mapped[str | None] = mapped_column(String(16))
    targeting_note: Mapped[str | None] = mapped_column(LongText)


class CouponAnnouncement(Base):
    """Telling the shop's checkout of one run's coupon codes ([shop] coupon_webhook_url).

    One row per run that reserved codes, kept until the shop has accepted them, so a
    shop that is down hears of them later under the same ``webhook_id`` (its
    idempotency key) instead of never. ``next_attempt_at`` backs off after failures.
    """

    __tablename__ = "coupon_announcements"

    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    codes: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(LongText)


class Message(Base):
    """An outbox row: everything a run decided for one user, before anything is sent."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_messages_user_id_channel_created_at", "user_id", "channel", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    campaign: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(LongText)
    body: Mapped[str | None] = mapped_column(LongText)
    text_body: Mapped[str | None] = mapped_column(LongText)
    products: Mapped[list[Any]] = mapped_column(JSON, default=list)
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    # Seed-list test sends go to this address instead of the user's own.
    address_override: Mapped[str | None] = mapped_column(String(320))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    # Provider requests whose outcome was recorded; ``claims``: times claimed.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    last_error: Mapped[str | None] = mapped_column(LongText)
    engagement: Mapped[str | None] = mapped_column(String(16))
    engagement_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Comma-separated response types received before `campaign prune` deleted the
    # message's response rows (the funnel reads them; docs/operations.md "Retention").
    pruned_response_types: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The probability this row's user was assigned treatment (NULL: never randomised,
    # or planned before it was recorded: read the run's holdout_share), and whether the
    # user was in the run's learning share (outside the audience, randomised for the
    # uplift model; docs/planning.md "The learning share").
    p_treatment: Mapped[float | None] = mapped_column(Float)
    learning: Mapped[bool | None] = mapped_column(Boolean)


class Coupon(Base):
    """A unique coupon code reserved for one recipient; never reused."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    campaign: Mapped[str] = mapped_column(String(64))
    percent_off: Mapped[int] = mapped_column(Integer)
    min_order_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    order_id: Mapped[str | None] = mapped_column(String(128))


class Response(Base):
    """A provider or shop event about a message; unmatched ones keep ``message_id`` NULL."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Suppression(Base):
    """Never message this user or address again on this channel (or ``all``).

    The address is kept as a SHA-256 hash so a forgotten person stays suppressed
    without their address being stored.
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExperimentArm(Base):
    """Bandit state of one variant of one campaign."""

    __tablename__ = "experiment_arms"
    __table_args__ = (UniqueConstraint("campaign", "variant"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64))
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignState(Base):
    """Operator switches stored in the database (``campaign pause|resume``).

    One row per paused-or-resumed campaign; the reserved name ``*`` is the pause-all
    switch. Read by the planner before a run and by every outbox claim, so a pause
    takes effect without restarting anything.
    """

    __tablename__ = "campaign_state"

    campaign: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(LongText)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who switched it last (``--by``, else the OS user); None before revision 0007.
    changed_by: Mapped[str | None] = mapped_column(String(128))


class PauseEvent(Base):
    """Every ``campaign pause`` and ``campaign resume``, kept: who, why and when.

    ``campaign_state`` holds the switch; this table is its history, so a later pause
    never erases the reason of an earlier one.
    """

    __tablename__ = "pause_events"
    __table_args__ = (Index("ix_pause_events_campaign_at", "campaign", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(LongText)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class IngestFile(Base):
    """A CSV drop the daemon has processed, by content hash, so each file loads once."""

    __tablename__ = "ingest_files"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """A live sender process (daemon or worker); channel rates are shared among them."""

    __tablename__ = "worker_heartbeats"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class InstallationSecret(Base):
    """A random key generated once per database, for signing when no secret is configured.

    Unsubscribe links must be unforgeable even in a setup that names no server secret
    (the demo, a first trial); a key derived from public facts would not be. Every
    process sharing the database reads the same key, so links stay valid across hosts.
    """

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DataFix(Base):
    """A one-time correction of stored data that an upgrade asks for, and when it ran.

    Revision 0006 records ``money.minor_units`` when the database already held amounts:
    they were stored as hundredths whatever the currency, and ``campaign db
    fix-money`` rescales them once to the currency's own minor units (docs/operations.md,
    "Upgrades").
    """

    __tablename__ = "data_fixes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    detail: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExperimentAssignment(Base):
    """One user of a past A/B test the shop imported (``campaign import experiments``).

    ``group`` is ``treatment`` or ``control``; the outcome was measured by the shop.
    Re-importing the same (campaign, user, assigned_at) updates the row in place.
    """

    __tablename__ = "experiment_assignments"
    __table_args__ = (UniqueConstraint("campaign", "user_id", "assigned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    group: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    converted: Mapped[bool] = mapped_column(Boolean)
    revenue_cents: Mapped[int | None] = mapped_column(BigInteger)
    visited: Mapped[bool | None] = mapped_column(Boolean)
    variant: Mapped[str | None] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


# The console's tables live in their own module; imported here so that every table is
# on the metadata whenever the models are (Alembic, the tests).
from campaign.db import console as _console  # noqa: E402,F401
