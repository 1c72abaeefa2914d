"""signed model artifacts; a record of amounts stored before currency-aware money

* ``model_versions.artifact_signature``: the HMAC of each pickled artifact with a key
  kept outside the database. Existing rows stay NULL (unsigned) and are refused until
  ``campaign models sign`` signs them once.
* ``data_fixes``: one-time data corrections an upgrade asks for. When the database
  already holds amounts (prices, event amounts, coupon minimum orders), they were
  stored as hundredths of the currency unit whatever the currency, so a pending
  ``money.minor_units`` row is recorded; ``campaign db fix-money`` applies it once for
  a shop whose currency has no or three decimals (and only marks it done otherwise).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 05:45:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MONEY_FIX = "money.minor_units"


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("artifact_signature", sa.String(length=128), nullable=True))
    fixes = op.create_table(
        "data_fixes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("detail", campaign.db.base.LongText, nullable=False),
        sa.Column("created_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", campaign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_fixes")),
        **TABLE_OPTIONS,
    )
    bind = op.get_bind()
    stored = bind.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM products WHERE price_cents IS NOT NULL)"
            " + (SELECT count(*) FROM events WHERE amount_cents IS NOT NULL)"
            " + (SELECT count(*) FROM coupons WHERE min_order_cents <> 0)"
        )
    ).scalar()
    if stored:
        op.bulk_insert(
            fixes,
            [
                {
                    "name": MONEY_FIX,
                    "detail": "amounts stored before this version are hundredths of the "
                    "currency unit; run `campaign db fix-money`",
                    "created_at": datetime.now(UTC),
                    "applied_at": None,
                }
            ],
        )


def downgrade() -> None:
    op.drop_table("data_fixes")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("artifact_signature")
