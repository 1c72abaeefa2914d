"""Apply Alembic migrations from code (``campaign db upgrade`` and the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from campaign.errors import DatabaseError
from campaign.shipped import migrations_folder

MIGRATIONS_DIR = migrations_folder()


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


def _masked(engine: Engine) -> str:
    return str(engine.url.render_as_string(hide_password=True))


def _newer_than_code(engine: Engine, current: str) -> DatabaseError:
    return DatabaseError(
        _masked(engine),
        f"schema is at revision {current}, which this version of campaign does not know "
        f"(its newest is {head_revision(engine)}): a newer campaign migrated it; install "
        "that version (or newer) here, or restore a backup taken before that upgrade; "
        "this version can neither use nor migrate it",
    )


def known_revision(engine: Engine, revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations."""
    from alembic.script.revision import ResolutionError
    from alembic.util import CommandError

    try:
        script = ScriptDirectory.from_config(alembic_config(engine))
        return script.get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest). Idempotent.

    Raises:
        DatabaseError: the database is at a revision this code does not know (a newer
            version of campaign migrated it).
    """
    current = current_revision(engine)
    if current is not None and not known_revision(engine, current):
        raise _newer_than_code(engine, current)
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
        DatabaseError: the database is empty or behind (run ``campaign db upgrade``),
            or ahead of this code (run the newer version that migrated it).
    """
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        if current is not None and not known_revision(engine, current):
            raise _newer_than_code(engine, current)
        state = "empty" if current is None else f"at revision {current}, code expects {head}"
        raise DatabaseError(_masked(engine), f"schema is {state}; run 'campaign db upgrade'")
