"""The one-time rescale of amounts stored before money followed the shop's currency.

Before revision 0010, import read every amount as hundredths of the currency unit:
``"1200"`` JPY was stored as 120000 and ``"12.5"`` KWD as 1250. Templates and exports
already used the currency's own decimals, so such a shop saw ¥120,000 for a ¥1,200
price. Revision 0006 records a pending ``money.minor_units`` fix when the database
held amounts; :func:`fix_money` applies it once:

* prices (``products.price_cents``), event line totals (``events.amount_cents``) and
  coupon minimum orders (``coupons.min_order_cents``) are multiplied by
  ``10 ** (digits - 2)``: divided by 100 for a currency without decimals (JPY, KRW),
  multiplied by 10 for one with three (KWD, BHD), unchanged for two (CNY, USD, EUR);
* events imported without an ``event_id`` carry a content hash that includes the
  amount; it is recomputed, so re-importing an old file still changes nothing.

Division must be exact: an amount that is not a whole number of the currency's
minor unit (``1200.50`` JPY, accepted by the old import) stops the fix before it
changes anything, with the rows named. Rendered message bodies keep the text they were
sent with; retrain models afterwards (their spend inputs were in the old scale).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from campaign.common.errors import CampaignError
from campaign.common.money import format_amount, minor_digits
from campaign.db.base import table_of
from campaign.db.models import Coupon, DataFix, Event, Product, User

MONEY_FIX = "money.minor_units"
HASH_PREFIX = "hash:"
_COLUMNS: tuple[tuple[Any, str, str, str], ...] = (
    (Product, "price_cents", "products", "external_id"),
    (Event, "amount_cents", "events", "source_event_id"),
    (Coupon, "min_order_cents", "coupons", "code"),
)


@dataclass
class MoneyFixReport:
    """What :func:`fix_money` found or did. ``status``: ``nothing`` (no amounts were
    stored before), ``already`` (applied at ``applied_at``), ``unchanged`` (two-decimal
    currency: marked done), ``applied`` / ``would apply`` (dry run)."""

    status: str
    currency: str
    factor: str = "1"
    rows: dict[str, int] = field(default_factory=dict)
    rehashed_events: int = 0
    applied_at: datetime | None = None

    def summary(self) -> str:
        """One line for people."""
        if self.status == "nothing":
            return "nothing to fix: every amount in this database was stored in minor units"
        if self.status == "already":
            when = f"{self.applied_at:%Y-%m-%d %H:%M} UTC" if self.applied_at else "earlier"
            return f"amounts were already rescaled ({when}); nothing done"
        if self.status == "unchanged":
            return (f"{self.currency} has two decimals: stored amounts are already right; "
                    "marked done")
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        verb = "would rescale" if self.status == "would apply" else "rescaled"
        return (f"{verb} amounts to {self.currency} minor units (x{self.factor}): {counts}; "
                f"{self.rehashed_events} event content hash(es) recomputed")


def event_content_hash(
    user_ref: str, kind: str, ts_text: str, product_ref: str, order_id: str | None,
    quantity: int, amount: int | None, coupon: str | None,
) -> str:
    """The id import gives an event without ``event_id`` (the same formula as
    :func:`campaign.ingest.readers.event_chunks`, which inlines it for speed)."""
    text = (f"{user_ref}\x1f{kind}\x1f{ts_text}\x1f{product_ref}\x1f{order_id}"
            f"\x1f{quantity}\x1f{amount}\x1f{coupon}")
    return HASH_PREFIX + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fix_money(
    engine: Engine, currency: str, *, now: datetime | None = None, dry_run: bool = False
) -> MoneyFixReport:
    """Rescale the amounts stored before revision 0010 to ``currency``'s minor units,
    once (one transaction; ``dry_run`` rolls it back and only reports).

    Raises:
        CampaignError: some stored amounts cannot be divided exactly (nothing changed).
    """
    now = now or datetime.now(UTC)
    digits = minor_digits(currency)
    with engine.connect() as connection, connection.begin() as transaction:
        fix = connection.execute(select(DataFix).where(DataFix.name == MONEY_FIX)).first()
        if fix is None:
            return MoneyFixReport("nothing", currency)
        if fix.applied_at is not None:
            return MoneyFixReport("already", currency, applied_at=fix.applied_at)
        if digits == 2:
            _mark(connection, now, f"{currency}: two decimals, nothing rescaled")
            return MoneyFixReport("unchanged", currency)
        multiply, divide = (10 ** (digits - 2), 1) if digits > 2 else (1, 10 ** (2 - digits))
        if divide > 1:
            _check_divisible(connection, divide, currency)
        report = MoneyFixReport(
            "would apply" if dry_run else "applied", currency,
            factor=str(multiply) if divide == 1 else f"1/{divide}",
        )
        report.rehashed_events = _rehash_events(connection, multiply, divide)
        for model, column, name, _key in _COLUMNS:
            values = getattr(model, column)
            result = connection.execute(
                update(model)
                .where(values.is_not(None), values != 0)
                .values({column: values * multiply if divide == 1 else values // divide})
            )
            report.rows[name] = int(result.rowcount)
        _mark(connection, now, f"{currency}: x{report.factor}")
        if dry_run:
            transaction.rollback()
        return report


def _mark(connection: Connection, now: datetime, detail: str) -> None:
    connection.execute(
        update(DataFix).where(DataFix.name == MONEY_FIX).values(applied_at=now, detail=detail)
    )


def _check_divisible(connection: Connection, divide: int, currency: str) -> None:
    problems: list[str] = []
    for model, column, name, key in _COLUMNS:
        values = getattr(model, column)
        rows = connection.execute(
            select(getattr(model, key), values).where(values.is_not(None), values % divide != 0)
            .order_by(getattr(model, key)).limit(5)
        ).all()
        problems += [
            f"{name} {row[0]}: {format_amount(int(row[1]), 'USD')} (old hundredths)"
            for row in rows
        ]
    if problems:
        raise CampaignError(
            f"cannot rescale to {currency}: these amounts are not whole {currency} minor "
            f"units (first ones: {'; '.join(problems)}); correct them (re-import those rows "
            "with whole amounts) and run `campaign db fix-money` again; nothing was changed"
        )


def _rehash_events(connection: Connection, multiply: int, divide: int) -> int:
    """Recompute the content-hash ids of events without ``event_id`` for new amounts.

    Only rows whose stored hash matches the formula with the old amount are changed,
    so an id is never rewritten on a guess.
    """
    events = table_of(Event)
    rows = connection.execute(
        select(
            events.c.id, events.c.source_event_id, events.c.type, events.c.ts,
            events.c.order_id, events.c.quantity, events.c.amount_cents, events.c.coupon_code,
            User.external_id.label("user_ref"), Product.external_id.label("product_ref"),
        )
        .join(User, User.id == events.c.user_id)
        .outerjoin(Product, Product.id == events.c.product_id)
        .where(events.c.source_event_id.like(f"{HASH_PREFIX}%"), events.c.amount_cents.is_not(None))
    ).all()
    changed = 0
    for row in rows:
        ts = row.ts.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        parts = (row.user_ref, row.type, ts, row.product_ref or "", row.order_id,
                 int(row.quantity))
        if event_content_hash(*parts, int(row.amount_cents), row.coupon_code) != (
            row.source_event_id
        ):
            continue
        amount = int(row.amount_cents) * multiply // divide
        connection.execute(
            update(Event).where(Event.id == row.id)
            .values(source_event_id=event_content_hash(*parts, amount, row.coupon_code))
        )
        changed += 1
    return changed
