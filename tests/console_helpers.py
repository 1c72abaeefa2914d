"""Shared set-up of the console tests: a shop folder (config, SQLite, a templates copy),
accounts of every role, and a logged-in starlette TestClient."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from campaign.app.accounts import add_account
from campaign.config import Config, load_config
from campaign.console.app import create_app
from campaign.db.engine import make_engine
from campaign.templating.defaults import copy_default_templates

PASSWORD = "correct horse battery"
ROLES = ("marketer", "analyst", "operator")
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

CONFIG = """
[database]
url = "{url}"

[templates]
dir = "templates"

[channels.email]
kind = "file"
path = "outbox"

[[campaigns]]
name = "winback"
channels = ["email"]
[campaigns.schedule]
cron = "0 10 * * *"
timezone = "UTC"
[[campaigns.variants]]
name = "coupon"
template = "winback"

[[campaigns]]
name = "care"
channels = ["email"]
[[campaigns.variants]]
name = "gentle"
template = "care"
offer = false
"""


@dataclass
class Shop:
    """A shop folder: its config file, config, engine and templates copy."""

    folder: Path
    config_path: Path
    config: Config
    engine: Engine

    @property
    def templates(self) -> Path:
        return self.folder / "templates"


def add_role_accounts(sqlite_file: Path) -> None:
    """One account per role, named like it, with :data:`PASSWORD` (argon2 is slow on
    purpose: made once per test session, then the file is copied)."""
    engine = make_engine(f"sqlite:///{sqlite_file}")
    for role in ROLES:
        add_account(engine, role, role, PASSWORD, actor="test", now=NOW)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def make_shop(folder: Path, sqlite_file: Path) -> Shop:
    """A shop in ``folder`` on a copy of the migrated SQLite file ``sqlite_file``."""
    database = folder / "campaign.db"
    shutil.copyfile(sqlite_file, database)
    copy_default_templates(folder / "templates")
    config_path = folder / "config.toml"
    config_path.write_text(CONFIG.format(url=f"sqlite:///{database}"), encoding="utf-8")
    config = load_config(config_path)
    engine = make_engine(config.database_url())
    return Shop(folder, config_path, config, engine)


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def console_app(shop: Shop) -> Starlette:
    """The console app of ``shop`` (its own login limiter)."""
    return create_app(shop.config, shop.engine, clock=lambda: datetime.now(UTC))


@contextmanager
def client_for(
    shop: Shop, role: str | None = None, app: Starlette | None = None
) -> Iterator[TestClient]:
    """A TestClient of the console (of ``app``, else a new one), logged in as ``role``
    (None: anonymous)."""
    app = app or console_app(shop)
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        if role is not None:
            login(client, role)
        yield client


def login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    """Log in through the form; returns the status of the POST."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf": token, "name": name, "password": password, "next": "/"}
    )
    return response.status_code


def token(client: TestClient) -> str:
    """The session's CSRF token, read from a page."""
    return csrf_of(client.get("/").text)
