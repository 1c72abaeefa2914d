"""Shared query helpers: the per-database installation secret."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import Engine

from campaign.db.engine import make_engine
from campaign.db.queries import installation_secret


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
