"""coupon announcements: the shop hears of every run's codes, retried until it does

Runs that already reserved codes before this revision are recorded as announced
(their announcement was attempted then), so upgrading sends nothing again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_announcements",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("codes", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "next_attempt_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("announced_at", campaign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", campaign.db.base.LongText, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["campaign_runs.id"],
            name=op.f("fk_coupon_announcements_run_id_campaign_runs"),
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_coupon_announcements")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_coupon_announcements_webhook_id")),
        **TABLE_OPTIONS,
    )
    # Settle the runs that came before: one row each, already announced.
    # MySQL's || is OR, and it cannot CAST to VARCHAR.
    if op.get_bind().dialect.name == "mysql":
        webhook_id = "CONCAT('coupons_legacy_', m.run_id)"
    else:
        webhook_id = "'coupons_legacy_' || CAST(m.run_id AS VARCHAR(20))"
    op.execute(
        f"""
        INSERT INTO coupon_announcements
            (run_id, webhook_id, codes, attempts, created_at, next_attempt_at, announced_at)
        SELECT m.run_id, {webhook_id}, COUNT(*), 0,
               MIN(c.issued_at), MIN(c.issued_at), MIN(c.issued_at)
        FROM coupons c JOIN messages m ON m.id = c.message_id
        WHERE m.run_id IS NOT NULL
        GROUP BY m.run_id
        """
    )


def downgrade() -> None:
    op.drop_table("coupon_announcements")
