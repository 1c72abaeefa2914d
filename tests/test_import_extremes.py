"""Extreme values in imported files: one line each (file:line: column: reason), no
traceback, the database exactly as before; and amounts in the shop's own currency.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaign.common.errors import InputError, InputErrors
from campaign.common.money import MAX_MINOR_UNITS
from campaign.db.base import Base
from campaign.db.models import Event, Product
from campaign.ingest import import_csv
from campaign.ingest.readers import (
    MAX_QUANTITY,
    CellError,
    event_chunks,
    open_csv,
    parse_timestamp,
    product_record,
    user_record,
)
from tests.test_ingest import NOW, _write

USERS = "user_id,email\nu1,u1@example.com\n"
PRODUCTS = "product_id,name,price\np1,Shoe,1200\n"
BIG = "x" * 10_000_000  # 10 MB, far beyond csv's own field limit of 128 KiB


def _snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def _shop(engine: Engine, tmp_path: Path, currency: str = "CNY") -> None:
    import_csv(engine, "users", _write(tmp_path, "users.csv", USERS), now=NOW)
    import_csv(
        engine, "products", _write(tmp_path, "products.csv", PRODUCTS), now=NOW, currency=currency
    )


def _csv(header: list[str], *rows: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


EVENT_HEADER = ["event_id", "user_id", "type", "ts", "product_id", "quantity", "amount"]
EXTREME_EVENTS = [
    (["e1", "u1", "visit", "9999-12-31T23:59:59-05:00", "", "", ""], "ts",
     "outside the years 1900-2199"),
    (["e2", "u1", "visit", "0001-01-01T00:00:00+05:00", "", "", ""], "ts",
     "outside the years 1900-2199"),
    (["e3", "u1", "purchase", "2024-03-01", "p1", "1", "99999999999999999999999.00"], "amount",
     "over the largest amount accepted"),
    (["e4", "u1", "purchase", "2024-03-01", "p1", "9" * 30, "1.00"], "quantity",
     f"not a whole number from 1 to {MAX_QUANTITY}"),
    (["e5", "u1", "purchase", "2024-03-01", "p1", str(MAX_QUANTITY + 1), "1.00"], "quantity",
     f"not a whole number from 1 to {MAX_QUANTITY}"),
    (["e6", "u1", "purchase", "2024-03-01", "p1", "1", "9" * 5000], "amount",
     "over the largest amount accepted"),
    (["e7", "u1", "visit", BIG, "", "", ""], "ts", "not an ISO 8601 timestamp"),
    (["e8", BIG, "visit", "2024-03-01", "", "", ""], "user_id", "unknown user"),
    (["e9", "u1", BIG, "2024-03-01", "", "", ""], "type", "unknown event type"),
    (["e10", "u1", "view", "2024-03-01", BIG, "", ""], "product_id", "unknown product"),
    (["e11", "u1", "visit", "2024-03-01", "", "", BIG], "amount", "not a decimal amount"),
    ([BIG, "u1", "visit", "2024-03-01", "", "", ""], "event_id", "longer than 128 characters"),
]


@pytest.mark.parametrize(("row", "column", "reason"), EXTREME_EVENTS,
                         ids=[f"{r[2]}-{r[1]}" for r in EXTREME_EVENTS])
def test_an_extreme_event_value_is_one_line_and_imports_nothing(
    engine: Engine, tmp_path: Path, row: list[str], column: str, reason: str
) -> None:
    _shop(engine, tmp_path)
    ok = ["ok", "u1", "visit", "2024-03-01T10:00:00Z", "", "", ""]
    path = _write(tmp_path, "events.csv", _csv(EVENT_HEADER, ok, row))
    before = _snapshot(engine)
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "events", path, now=NOW)
    [error] = caught.value.errors
    assert (error.source, error.line, error.column) == ("events.csv", 3, column)
    assert str(error).startswith(f"events.csv:3: {column}: {reason}")
    assert "\n" not in str(error) and len(str(error)) < 300
    assert _snapshot(engine) == before


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("user_id,name\nu1," + BIG + "\n", "name"),
        ("user_id,vip\nu1," + BIG + "\n", "vip"),
        ("user_id,created_at\nu1,9999-12-31T23:59:59-05:00\n", "created_at"),
        ("user_id,consent_email\nu1," + BIG + "\n", "consent_email"),
    ],
)
def test_an_extreme_user_value_names_its_column(
    engine: Engine, tmp_path: Path, text: str, column: str
) -> None:
    path = _write(tmp_path, "users.csv", text)
    before = _snapshot(engine)
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "users", path, now=NOW)
    [error] = caught.value.errors
    assert (error.line, error.column) == (2, column)
    assert "\n" not in str(error) and len(str(error)) < 300
    assert _snapshot(engine) == before


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("product_id,price\np1,99999999999999999999999.00\n", "price"),
        ("product_id,tags\np1," + BIG + "\n", "tags"),
        ("product_id,url\np1," + BIG + "\n", "url"),
    ],
)
def test_an_extreme_product_value_names_its_column(
    engine: Engine, tmp_path: Path, text: str, column: str
) -> None:
    path = _write(tmp_path, "products.csv", text)
    before = _snapshot(engine)
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "products", path, now=NOW)
    [error] = caught.value.errors
    assert (error.line, error.column) == (2, column)
    assert _snapshot(engine) == before


def test_skip_invalid_keeps_going_past_a_huge_field(engine: Engine, tmp_path: Path) -> None:
    _shop(engine, tmp_path)
    rows = [["a", "u1", "visit", "2024-03-01", "", "", ""],
            ["b", "u1", "visit", BIG, "", "", ""],
            ["c", "u1", "visit", "2024-03-02", "", "", ""]]
    path = _write(tmp_path, "events.csv", _csv(EVENT_HEADER, *rows))
    report = import_csv(engine, "events", path, now=NOW, skip_invalid=True)
    assert (report.inserted, report.rejected) == (2, 1)


def test_the_largest_accepted_values_are_stored_exactly(engine: Engine, tmp_path: Path) -> None:
    _shop(engine, tmp_path)
    top = "9999999999999.99"  # MAX_MINOR_UNITS in CNY
    rows = [["big", "u1", "purchase", "2199-12-31T23:59:59Z", "p1", str(MAX_QUANTITY), top]]
    import_csv(engine, "events", _write(tmp_path, "events.csv", _csv(EVENT_HEADER, *rows)),
               now=NOW)
    with engine.connect() as connection:
        stored = connection.execute(select(Event.quantity, Event.amount_cents)).one()
    assert tuple(stored) == (MAX_QUANTITY, MAX_MINOR_UNITS)


@pytest.mark.parametrize(
    ("currency", "price", "amount", "price_minor", "amount_minor"),
    [("JPY", "1200", "2400", 1200, 2400), ("KWD", "12.345", "1.5", 12345, 1500),
     ("CNY", "129.50", "9.9", 12950, 990), ("USD", "7", "0.05", 700, 5)],
)
def test_amounts_are_stored_in_the_shops_minor_units(
    engine: Engine, tmp_path: Path, currency: str, price: str, amount: str,
    price_minor: int, amount_minor: int,
) -> None:
    import_csv(engine, "users", _write(tmp_path, "users.csv", USERS), now=NOW)
    import_csv(engine, "products", _write(tmp_path, "p.csv", f"product_id,price\np1,{price}\n"),
               now=NOW, currency=currency)
    events = _csv(EVENT_HEADER, ["e1", "u1", "purchase", "2024-03-01", "p1", "1", amount])
    import_csv(engine, "events", _write(tmp_path, "events.csv", events), now=NOW,
               currency=currency)
    with engine.connect() as connection:
        assert connection.execute(select(Product.price_cents)).scalar() == price_minor
        assert connection.execute(select(Event.amount_cents)).scalar() == amount_minor


def test_a_yen_amount_with_decimals_is_refused(engine: Engine, tmp_path: Path) -> None:
    _shop(engine, tmp_path, "JPY")
    events = _csv(EVENT_HEADER, ["e1", "u1", "purchase", "2024-03-01", "p1", "1", "1200.50"])
    with pytest.raises(InputErrors, match=r"events.csv:2: amount: more decimals than JPY has"):
        import_csv(engine, "events", _write(tmp_path, "events.csv", events), now=NOW,
                   currency="JPY")


# -- property tests of the readers (no database) ---------------------------------------

CELL = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "1e400",
                     "99999999999999999999999.00", "-0", "nan", "0x10", "١٢٣", "1" * 5000]),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(CELL, min_size=7, max_size=7),
       currency=st.sampled_from(["JPY", "KWD", "CNY", "USD"]))
def test_any_event_row_is_a_record_or_one_cell_error(
    tmp_path: Path, cells: list[str], currency: str
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(_csv(EVENT_HEADER, cells), encoding="utf-8", newline="")
    try:
        with open_csv(path, "events", currency) as csv_file:
            chunks = list(event_chunks(csv_file, {cells[1].strip(): 1}, {cells[4].strip(): 1}))
    except InputError as exc:  # a file-level problem (a NUL byte): one line, no traceback
        assert "\n" not in str(exc)
        return
    errors = [e for chunk in chunks for e, _ in chunk.errors]
    records = [r for chunk in chunks for r in chunk.records]
    for error in errors:
        assert error.source == "events.csv" and error.line is not None
        assert "\n" not in error.reason and len(str(error)) < 400
    for record in records:
        quantity, amount = record[5], record[6]
        assert 1 <= quantity <= MAX_QUANTITY
        assert amount is None or 0 <= amount <= MAX_MINOR_UNITS


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(CELL, min_size=4, max_size=4))
def test_any_user_or_product_row_is_a_record_or_a_cell_error(
    tmp_path: Path, cells: list[str]
) -> None:
    users = tmp_path / "users.csv"
    users.write_text(_csv(["user_id", "created_at", "consent_email", "vip"], cells),
                     encoding="utf-8", newline="")
    products = tmp_path / "products.csv"
    products.write_text(_csv(["product_id", "price", "in_stock", "tags"], cells),
                        encoding="utf-8", newline="")
    for path, kind, reader in ((users, "users", user_record),
                               (products, "products", product_record)):
        try:
            with open_csv(path, kind) as csv_file:
                for _line, row in csv_file.rows():
                    try:
                        reader(csv_file, row)
                    except CellError as exc:
                        # Only a row of the wrong width has no single column to name.
                        assert exc.column or exc.reason.startswith("expected 4 fields")
                        assert "\n" not in exc.reason
        except InputError as exc:  # file-level: NUL bytes, blank header names...
            assert "\n" not in str(exc)


@given(st.datetimes(timezones=st.timezones()))
def test_any_timestamp_is_utc_or_refused_with_a_reason(moment: Any) -> None:
    text = moment.isoformat()
    try:
        parsed = parse_timestamp(text)
    except ValueError as exc:
        assert "outside the years" in str(exc) or "not an ISO 8601" in str(exc)
        return
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    assert parsed == datetime.fromisoformat(text)  # the same instant, now in UTC


def test_an_unknown_currency_is_refused_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path, "products.csv", PRODUCTS)
    with pytest.raises(ValueError, match="ISO 4217"):
        open_csv(path, "products", "ZZZ")


def test_input_errors_stay_input_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "user_id,type\n")
    with pytest.raises(InputError, match="missing required column"):
        open_csv(path, "events")
