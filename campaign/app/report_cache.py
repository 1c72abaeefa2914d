"""This process's latest reports, by what they were computed from.

The console's results pages ask for the same report again and again (each view, each
CSV download, the whole page), and computing it reads the whole history: every
message, response and purchase (most of a page's time on the demo shop). A report is
computed again only when its inputs may have changed: another campaign or minute, or
a new or changed message, response, event, coupon, bandit count or model version
(:func:`data_fingerprint`); otherwise the stored one is returned. Reports are
read-only, so sharing them between requests is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from campaign.db.models import Coupon, Event, ExperimentArm, Message, ModelVersion, Response

T = TypeVar("T")
_SIZE = 16  # a few campaigns × (tables, page) × languages need no more
_CACHE: OrderedDict[tuple[object, ...], object] = OrderedDict()
_LOCK = threading.Lock()


def data_fingerprint(connection: Connection) -> tuple[object, ...]:
    """What changes whenever the report's inputs do: row counts, newest ids and change
    times of the messages, responses, events and coupons, the bandit's counts and the
    model versions (with which are active). A handful of aggregate queries."""
    def one(*columns: object) -> tuple[object, ...]:
        return tuple(connection.execute(select(*columns)).one())  # type: ignore[call-overload]

    return (
        *one(func.count(Message.id), func.max(Message.id), func.max(Message.updated_at),
             func.max(Message.engagement_at)),
        *one(func.count(Response.id), func.max(Response.id)),
        *one(func.count(Event.id), func.max(Event.id)),
        *one(func.count(Coupon.id), func.max(Coupon.redeemed_at)),
        *one(func.count(), func.sum(ExperimentArm.successes),
             func.sum(ExperimentArm.failures)),
        *one(func.count(ModelVersion.id), func.max(ModelVersion.id),
             func.sum(case((ModelVersion.active.is_(True), ModelVersion.id), else_=0))),
    )


def cached(key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """The value stored under ``key`` (the caller includes the database, the
    question and :func:`data_fingerprint`), else ``compute()`` stored under it."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]  # type: ignore[return-value]
    value = compute()  # outside the lock: two first asks may both compute, alike
    with _LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _SIZE:
            _CACHE.popitem(last=False)
    return value


def clear() -> None:
    """Forget every stored report (tests)."""
    with _LOCK:
        _CACHE.clear()


def database_identity(connection: Connection) -> str | None:
    """Which database this is (its file for SQLite, else its URL); None for an
    in-memory SQLite database, which nothing may be shared for."""
    url = connection.engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        return None if not database or database == ":memory:" else f"sqlite:{database}"
    return url.render_as_string(hide_password=True)
