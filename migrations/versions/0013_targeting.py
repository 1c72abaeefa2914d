"""targeting by uplift: what a run ranked by, and each row's own assignment probability

* ``campaign_runs.ranked_by``: ``risk``, ``uplift`` or ``value``, what the run's audience
  was actually ordered by; ``campaign_runs.targeting_note``: why it differs from the
  config (no uplift model yet: ranked by risk). NULL for runs planned before.
* ``messages.p_treatment``: the probability the row's user was assigned treatment (one
  minus the holdout share in the audience, one half in the learning share); NULL for
  rows never randomised and rows planned before (read with the run's holdout_share).
* ``messages.learning``: the row belongs to the run's learning share.

Revision ID: 0013_targeting
Revises: 0012_experiments
Create Date: 2026-12-03 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base

revision = "0013_targeting"
down_revision = "0012_experiments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch:
        batch.add_column(sa.Column("ranked_by", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("targeting_note", campaign.db.base.LongText, nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("p_treatment", sa.Float(), nullable=True))
        batch.add_column(sa.Column("learning", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("learning")
        batch.drop_column("p_treatment")
    with op.batch_alter_table("campaign_runs") as batch:
        batch.drop_column("targeting_note")
        batch.drop_column("ranked_by")
