"""the console: accounts, the record of writes, template versions

* ``console_users``: console accounts (name, role, argon2 hash, disabled).
* ``console_audit``: every write through the console, ``campaign users`` and
  ``campaign pause/resume``: who, when, what, on what.
* ``template_versions``: every saved version of a template file, for diffs and reverts.

Revision ID: 0011_console
Revises: 0010
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaign.db.base
from campaign.db.dialect.mysql import TABLE_OPTIONS

revision = "0011_console"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "password_changed_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("last_login_at", campaign.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("name", name=op.f("uq_console_users_name")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "console_audit",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_audit")),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("console_audit", schema=None) as batch_op:
        batch_op.create_index("ix_console_audit_at", ["at"], unique=False)
    op.create_table(
        "template_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", campaign.db.base.LongText, nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", campaign.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint(
            "path", "version", name=op.f("uq_template_versions_path_version")
        ),
        **TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("template_versions")
    with op.batch_alter_table("console_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_console_audit_at")
    op.drop_table("console_audit")
    op.drop_table("console_users")
