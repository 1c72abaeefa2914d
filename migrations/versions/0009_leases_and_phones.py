"""claims apart from attempts; phones in E.164 with the original kept

``messages.claims`` counts claims, ``attempts`` from now on only requests whose outcome
was recorded. Before this revision a claim counted as an attempt, so existing rows
start with ``claims = attempts``.

``users.phone`` becomes E.164 (``campaign.common.contacts.normalize_phone``, national numbers
read in the country of the user's locale) and ``users.phone_original`` keeps what was
stored. Suppressions keep their hashes: lookups hash the original too, so a number
suppressed before this revision stays suppressed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.common.contacts import normalize_phone, region_of_locale

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("claims", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE messages SET claims = attempts WHERE attempts IS NOT NULL")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("phone_original", sa.String(length=32), nullable=True))
    bind = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.BigInteger()),
        sa.column("phone", sa.String()),
        sa.column("phone_original", sa.String()),
        sa.column("locale", sa.String()),
    )
    rows = bind.execute(
        sa.select(users.c.id, users.c.phone, users.c.locale).where(users.c.phone.is_not(None))
    ).all()
    changes = [
        {"b_id": row.id, "b_phone": normalize_phone(row.phone, region_of_locale(row.locale)),
         "b_original": row.phone}
        for row in rows
    ]
    if changes:
        bind.execute(
            users.update()
            .where(users.c.id == sa.bindparam("b_id"))
            .values(phone=sa.bindparam("b_phone"), phone_original=sa.bindparam("b_original")),
            changes,
        )


def downgrade() -> None:
    op.execute("UPDATE users SET phone = phone_original WHERE phone_original IS NOT NULL")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("phone_original")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("claims")
