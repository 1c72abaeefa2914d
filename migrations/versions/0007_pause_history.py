"""pause history: who paused or resumed a campaign, why and when, never overwritten

``campaign_state`` gains ``changed_by``; ``pause_events`` keeps every switch. A pause
switched on before this revision gets one event carrying its reason and time, with
the actor ``unknown``.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_by", sa.String(length=128), nullable=True))
    op.create_table(
        "pause_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", campaign.db.base.LongText, nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pause_events")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("pause_events", schema=None) as batch_op:
        batch_op.create_index("ix_pause_events_campaign_at", ["campaign", "at"], unique=False)
    # The pauses in force keep their reason and time in the history.
    op.execute(
        """
        INSERT INTO pause_events (campaign, paused, reason, actor, at)
        SELECT campaign, paused, reason, 'unknown', updated_at
        FROM campaign_state
        WHERE paused AND updated_at IS NOT NULL
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("pause_events", schema=None) as batch_op:
        batch_op.drop_index("ix_pause_events_campaign_at")
    op.drop_table("pause_events")
    with op.batch_alter_table("campaign_state", schema=None) as batch_op:
        batch_op.drop_column("changed_by")
