"""daemon state: pause switches, processed CSV drops, sender heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_state",
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", campaign.db.base.LongText, nullable=True),
        sa.Column("updated_at", campaign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("campaign", name=op.f("pk_campaign_state")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "ingest_files",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("processed_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", name=op.f("pk_ingest_files")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_worker_heartbeats")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_worker_heartbeats_heartbeat_at"), ["heartbeat_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_heartbeat_at"))
    op.drop_table("worker_heartbeats")
    op.drop_table("ingest_files")
    op.drop_table("campaign_state")
