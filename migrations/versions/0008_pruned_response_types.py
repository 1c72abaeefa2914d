"""pruned response types: what a message received, kept when `campaign prune` deletes
its response rows, so the funnel of a pruned run stays the same

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_response_types", sa.String(length=255),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("pruned_response_types")
