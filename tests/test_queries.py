"""Shared query helpers: the per-database installation secret and the unsubscribe key."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from campaign.db.engine import make_engine
from campaign.db.models import InstallationSecret
from campaign.db.queries import PREVIEW_ONLY_KEY, installation_secret, unsubscribe_key


def test_installation_secret_is_random_stable_and_per_name(engine: Engine) -> None:
    with engine.begin() as connection:
        first = installation_secret(connection, "unsubscribe")
    with engine.begin() as connection:
        again = installation_secret(connection, "unsubscribe")
        other = installation_secret(connection, "something-else")
    assert len(first) == 32
    assert again == first
    assert other != first


def test_two_databases_get_different_secrets(
    engine: Engine, sqlite_template: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    shutil.copyfile(sqlite_template, other)
    second = make_engine(f"sqlite:///{other}")
    try:
        with engine.begin() as a, second.begin() as b:
            assert installation_secret(a, "unsubscribe") != installation_secret(b, "unsubscribe")
    finally:
        second.dispose()


def test_unsubscribe_key_prefers_the_configured_secret(engine: Engine) -> None:
    with engine.begin() as connection:
        assert unsubscribe_key(connection, ["s3cret", "older"]) == b"s3cret"
        own = unsubscribe_key(connection, [])
    assert len(own) == 32 and own != b"s3cret"


def test_a_read_only_preview_never_creates_the_key(engine: Engine) -> None:
    with engine.connect() as connection:
        assert unsubscribe_key(connection, [], create=False) == PREVIEW_ONLY_KEY
        assert installation_secret_count(connection) == 0
    with engine.begin() as connection:
        made = unsubscribe_key(connection, [])
    with engine.connect() as connection:
        assert unsubscribe_key(connection, [], create=False) == made


def installation_secret_count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(InstallationSecret)).scalar())
