"""Apply Alembic migrations from code (``campaign db upgrade`` and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from campaign.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> AlembicConfig:
    """An Alembic config that runs ``migrations/`` on ``engine``'s connection."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise DatabaseError(
            str(engine.url), f"migrations folder not found at {MIGRATIONS_DIR}"
        )
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest). Idempotent."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def require_current(engine: Engine) -> None:
    """Fail with a clear hint unless the schema is at head.

    Raises:
        DatabaseError: the database is empty or behind; run ``campaign db upgrade``.
    """
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        state = "empty" if current is None else f"at revision {current}, code expects {head}"
        raise DatabaseError(
            str(engine.url.render_as_string(hide_password=True)),
            f"schema is {state}; run 'campaign db upgrade'",
        )
