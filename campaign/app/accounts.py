"""Console accounts and what each role may do: ``campaign users`` and the console's login.

Three roles (docs/console.md has the matrix per page):

* **marketer**: reads everything the console shows, edits, previews and saves templates;
* **analyst**: reads everything the console shows (campaigns, templates, the record);
* **operator**: everything, including pause/resume, the outbox (unmasked addresses in
  its error texts, requeueing dead messages) and the list of accounts.

Every change to an account is recorded (``console_audit``) with who made it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from campaign.common.errors import InputError, NotFound
from campaign.common.passwords import hash_password, needs_rehash, password_problem
from campaign.common.passwords import verify_password as _verify
from campaign.db import console as store
from campaign.db.console import Account

ROLES = ("marketer", "analyst", "operator")
READ = "read"
EDIT_TEMPLATES = "templates.edit"
PAUSE = "campaigns.pause"
READ_ACCOUNTS = "accounts.read"
OUTBOX = "outbox"
# The models page: the trees as rules and their versions (analysts and operators).
MODELS = "models.read"
# Customers' addresses unmasked (the audience page); everyone else sees them masked.
ADDRESSES = "addresses"
# Permission → the roles that have it: the one matrix the console enforces.
PERMISSIONS: dict[str, frozenset[str]] = {
    READ: frozenset(ROLES),
    EDIT_TEMPLATES: frozenset({"marketer", "operator"}),
    PAUSE: frozenset({"operator"}),
    READ_ACCOUNTS: frozenset({"operator"}),
    OUTBOX: frozenset({"operator"}),
    MODELS: frozenset({"analyst", "operator"}),
    ADDRESSES: frozenset({"operator"}),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# A hash to verify against when the account does not exist, so that a login for an
# unknown name takes as long as one for a known name with a wrong password.
_DUMMY_HASH: list[str] = []


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission`` (:data:`PERMISSIONS`)."""
    return role in PERMISSIONS.get(permission, frozenset())


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError("--role", f"{role!r} is not one of {', '.join(ROLES)}")


def _check_password(password: str, name: str) -> None:
    problem = password_problem(password, name)
    if problem is not None:
        raise InputError("password", problem)


def _require(engine: Engine, name: str) -> Account:
    with engine.connect() as connection:
        account = store.find_account(connection, name)
        if account is None:
            known = [a.name for a in store.all_accounts(connection)]
            raise NotFound("console account", name, known)
    return account


def add_account(
    engine: Engine, name: str, role: str, password: str, *, actor: str, now: datetime
) -> Account:
    """Create account ``name`` with ``role``; recorded as ``account.added`` by ``actor``.

    Raises:
        InputError: a bad name, an unknown role, a weak password, or the name is taken.
    """
    if not _NAME.match(name):
        raise InputError(
            "NAME", f"{name!r} is not an account name (letters, digits, _ . @ -; up to 64)"
        )
    _check_role(role)
    _check_password(password, name)
    hashed = hash_password(password)
    with engine.begin() as connection:
        if store.find_account(connection, name) is not None:
            raise InputError("NAME", f"account {name!r} exists (campaign users reset {name})")
        store.insert_account(connection, name, role, hashed, now=now)
        store.record(connection, actor, "account.added", name, now=now, detail={"role": role})
        account = store.find_account(connection, name)
    assert account is not None
    return account


def list_accounts(engine: Engine) -> list[Account]:
    """Every console account, by name; read-only."""
    with engine.connect() as connection:
        return store.all_accounts(connection)


def disable_account(engine: Engine, name: str, *, actor: str, now: datetime) -> Account:
    """Disable ``name``: it cannot log in, and its open sessions end at their next request.

    Raises:
        NotFound: no such account.
    """
    account = _require(engine, name)
    with engine.begin() as connection:
        store.update_account(connection, account.id, disabled=True)
        store.record(connection, actor, "account.disabled", name, now=now)
    return _require(engine, name)


def reset_account(
    engine: Engine,
    name: str,
    password: str,
    *,
    actor: str,
    now: datetime,
    role: str | None = None,
) -> Account:
    """Give ``name`` a new password (and ``role``, when given) and enable it again.

    Every session signed before the reset ends.

    Raises:
        NotFound: no such account. InputError: an unknown role or a weak password.
    """
    if role is not None:
        _check_role(role)
    _check_password(password, name)
    account = _require(engine, name)
    values: dict[str, object] = {
        "password_hash": hash_password(password), "password_changed_at": now, "disabled": False,
    }
    if role is not None:
        values["role"] = role
    with engine.begin() as connection:
        store.update_account(connection, account.id, **values)
        store.record(
            connection, actor, "account.reset", name, now=now,
            detail={"role": role or account.role},
        )
    return _require(engine, name)


def authenticate(
    engine: Engine, name: str, password: str, *, now: Callable[[], datetime]
) -> Account | None:
    """The enabled account ``name`` if ``password`` is its password, else None.

    A successful login stores its time (and a fresh hash when the parameters changed).
    """
    with engine.connect() as connection:
        account = store.find_account(connection, name)
    if account is None or account.disabled:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password("not a password of anyone"))
        _verify(_DUMMY_HASH[0], password)
        return None
    if not _verify(account.password_hash, password):
        return None
    values: dict[str, object] = {"last_login_at": now()}
    if needs_rehash(account.password_hash):
        values["password_hash"] = hash_password(password)
    with engine.begin() as connection:
        store.update_account(connection, account.id, **values)
        return store.account_by_id(connection, account.id)


def account_by_id(engine: Engine, account_id: int) -> Account | None:
    """The account with id ``account_id`` (for a session), or None; read-only."""
    with engine.connect() as connection:
        return store.account_by_id(connection, account_id)


def recent_writes(engine: Engine, limit: int = 100, offset: int = 0) -> list[store.Entry]:
    """The record of writes, newest first (the console's activity page); read-only."""
    with engine.connect() as connection:
        return store.recent_entries(connection, limit, offset)


SESSION_KEY_NAME = "console"


def installation_key(engine: Engine) -> bytes:
    """The database's own random key for console sessions (made on first use), shared by
    every console process on the database."""
    from campaign.db.queries import installation_secret

    with engine.begin() as connection:
        return installation_secret(connection, SESSION_KEY_NAME)
