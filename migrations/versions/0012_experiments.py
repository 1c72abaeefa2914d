"""experiment data for the uplift model

* ``campaign_runs.holdout_share``: the holdout share in force when a run was planned,
  the probability with which each of its eligible users was held out. Runs planned
  before stay NULL and are read with the campaign's configured share.
* ``experiment_assignments``: a shop's past A/B tests (``campaign import experiments``),
  one row per (campaign, user, assigned_at) with the measured outcome.

Revision ID: 0012_experiments
Revises: 0011_console
Create Date: 2026-12-03 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0012_experiments"
down_revision = "0011_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch:
        batch.add_column(sa.Column("holdout_share", sa.Float(), nullable=True))
    op.create_table(
        "experiment_assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column(
            "user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("revenue_cents", sa.BigInteger(), nullable=True),
        sa.Column("visited", sa.Boolean(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("imported_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_experiment_assignments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_assignments")),
        sa.UniqueConstraint(
            "campaign", "user_id", "assigned_at",
            name=op.f("uq_experiment_assignments_campaign_user_id_assigned_at"),
        ),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("experiment_assignments")
    with op.batch_alter_table("campaign_runs") as batch:
        batch.drop_column("holdout_share")
