"""CSV import into the real databases: upserts, dedupe, all-or-nothing, skip-invalid."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from campaign.common.errors import InputError, InputErrors
from campaign.db.base import Base
from campaign.db.models import CampaignRun, Event, Message, Product, Response, User
from campaign.db.queries import is_suppressed
from campaign.ingest import import_csv
from tests.factories import make_product, make_suppression, make_user

NOW = datetime(2026, 11, 1, tzinfo=UTC)

USERS = (
    "user_id,email,phone,name,locale,timezone,consent_email,consent_sms,created_at,vip\n"
    "u1,ann@example.com,+8613800000001,Ann,zh-CN,Asia/Shanghai,true,no,2024-01-05,gold\n"
    "u2,bob@example.com,,Bob,en,Europe/London,,yes,2024-02-01T08:00:00+01:00,\n"
)
PRODUCTS = (
    "product_id,name,category,brand,price,tags,in_stock,url\n"
    "p1,Trail shoe,shoes,Acme,129.00,running|trail,true,https://shop.example/p1\n"
    "p2,Sock,socks,Acme,9.9,,no,\n"
)
EVENTS = (
    "event_id,user_id,type,ts,product_id,order_id,quantity,amount,coupon_code\n"
    "e1,u1,view,2024-03-01T10:00:00Z,p1,,,,\n"
    "e2,u1,purchase,2024-03-01T18:30:00+08:00,p1,o1,2,258.00,WELCOME10\n"
    "e3,u2,visit,2024-03-02T09:00:00,,,,,\n"
)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def _load_shop(engine: Engine, tmp_path: Path) -> None:
    import_csv(engine, "users", _write(tmp_path, "users.csv", USERS), now=NOW)
    import_csv(engine, "products", _write(tmp_path, "products.csv", PRODUCTS), now=NOW)


def test_a_shop_imports_with_typed_values(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    report = import_csv(engine, "events", _write(tmp_path, "events.csv", EVENTS), now=NOW)
    assert (report.rows_read, report.inserted, report.rejected) == (3, 3, 0)
    with Session(engine) as session:
        ann = session.scalars(select(User).where(User.external_id == "u1")).one()
        bob = session.scalars(select(User).where(User.external_id == "u2")).one()
        assert (ann.consent_email, ann.consent_sms) == (True, False)
        assert ann.attributes == {"vip": "gold"}
        assert (bob.consent_email, bob.attributes) == (False, {})
        assert bob.created_at == datetime(2024, 2, 1, 7, tzinfo=UTC)
        shoe = session.scalars(select(Product).where(Product.external_id == "p1")).one()
        sock = session.scalars(select(Product).where(Product.external_id == "p2")).one()
        assert (shoe.price_cents, shoe.tags, shoe.in_stock) == (12900, ["running", "trail"], True)
        assert (sock.price_cents, sock.tags, sock.in_stock, sock.url) == (990, [], False, None)
        purchase = session.scalars(select(Event).where(Event.source_event_id == "e2")).one()
        assert purchase.user_id == ann.id and purchase.product_id == shoe.id
        assert purchase.ts == datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
        assert (purchase.quantity, purchase.amount_cents, purchase.coupon_code) == (
            2, 25800, "WELCOME10"
        )
        # Bulk-written timestamps compare in SQL exactly like ORM-written ones.
        later = session.scalars(
            select(Event.source_event_id).where(
                Event.ts >= datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
            )
        ).all()
        assert sorted(later) == ["e2", "e3"]


def test_reimporting_the_same_files_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    import_csv(engine, "events", _write(tmp_path, "events.csv", EVENTS), now=NOW)
    before = _snapshot(engine)
    users = import_csv(engine, "users", tmp_path / "users.csv", now=datetime.now(UTC))
    events = import_csv(engine, "events", tmp_path / "events.csv", now=datetime.now(UTC))
    assert (users.inserted, users.updated, users.unchanged) == (0, 0, 2)
    assert (events.inserted, events.unchanged) == (0, 3)
    assert _snapshot(engine) == before


def test_changed_users_are_updated_and_absent_columns_kept(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    path = _write(
        tmp_path,
        "users2.csv",
        "user_id,email,tier\nu1,ann@new.example,vip\nu2,bob@example.com,\nu3,,\n",
    )
    report = import_csv(engine, "users", path, now=NOW)
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)
    with Session(engine) as session:
        ann = session.scalars(select(User).where(User.external_id == "u1")).one()
        assert ann.email == "ann@new.example" and ann.name == "Ann" and ann.consent_email
        assert ann.attributes == {"vip": "gold", "tier": "vip"}


def test_a_suppressed_user_stays_suppressed_after_a_reimport_with_consent(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with session_factory() as session:
        user = make_user(session, external_id="u1", consent_email=False)
        make_suppression(session, user, channel="email")
        session.commit()
        user_id = user.id
    path = _write(tmp_path, "users.csv", "user_id,consent_email,consent_sms\nu1,true,true\n")
    assert import_csv(engine, "users", path, now=NOW).updated == 1
    with engine.connect() as connection:
        assert is_suppressed(connection, user_id, "email")
        assert not is_suppressed(connection, user_id, "sms")
        assert connection.execute(select(User.consent_email).where(User.id == user_id)).scalar()


def test_a_forgotten_user_is_not_brought_back_by_an_old_export(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with session_factory() as session:
        make_user(session, external_id="u1", email=None, name=None, forgotten_at=NOW)
        session.commit()
    path = _write(tmp_path, "users.csv", "user_id,email,name\nu1,ann@example.com,Ann\n")
    assert import_csv(engine, "users", path, now=NOW).unchanged == 1
    with engine.connect() as connection:
        assert connection.execute(select(User.email, User.name)).one() == (None, None)


BAD_EVENTS = {  # case: (the 5th line of the file, the start of its error)
    "bad date": (
        "e9,u1,view,2024-13-01,,,,,\n",
        "events.csv:5: ts: not an ISO 8601 timestamp: '2024-13-01'",
    ),
    "unknown user": (
        "e9,nobody,view,2024-03-01,,,,,\n",
        "events.csv:5: user_id: unknown user 'nobody'",
    ),
    "unknown product": (
        "e9,u1,view,2024-03-01,p404,,,,\n",
        "events.csv:5: product_id: unknown product 'p404'",
    ),
    "wrong type": (
        "e9,u1,view,2024-03-01,,,two,,\n",
        "events.csv:5: quantity: not a whole number",
    ),
    "unknown event type": (
        "e9,u1,teleport,2024-03-01,,,,,\n",
        "events.csv:5: type: unknown event type",
    ),
    "purchase without amount": (
        "e9,u1,purchase,2024-03-01,p1,,,,\n",
        "events.csv:5: amount: required",
    ),
    "duplicate id": (
        "e1,u1,cart,2024-03-05,,,,,\n",
        "events.csv:5: event_id: duplicate event_id 'e1'",
    ),
    "missing field": (
        "e9,u1,view\n",
        "events.csv:5: expected 9 fields, found 3",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_one_bad_row_imports_nothing_and_says_where(
    engine: Engine, tmp_path: Path, case: str
) -> None:
    _load_shop(engine, tmp_path)
    line, expected = BAD_EVENTS[case]
    path = _write(tmp_path, "events.csv", EVENTS + line)
    before = _snapshot(engine)
    # Chunks of 2 rows: the good rows before the bad one were written, then rolled back.
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "events", path, now=NOW, chunk_rows=2)
    assert caught.value.total == 1
    assert str(caught.value.errors[0]).startswith(expected)
    assert "1 invalid row(s), nothing imported" in str(caught.value)
    assert _snapshot(engine) == before


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "file is empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file, not CSV"),
    "semicolons": (b"user_id;type;ts\nu1;view;2024-03-01\n", "separated by semicolons"),
    "missing column": (b"user_id,type\nu1,view\n", "missing required column(s): ts"),
    "unknown column": (b"user_id,type,ts,mood\nu1,view,2024-03-01,ok\n", "unknown column(s): mood"),
    "not utf-8": (
        EVENTS.encode() + b"e9,u\xff,view,2024-03-01,,,,,\n",
        "events.csv:5: not UTF-8: byte 0xff",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_one_line_and_nothing_imported(
    engine: Engine, tmp_path: Path, case: str
) -> None:
    _load_shop(engine, tmp_path)
    content, expected = BAD_FILES[case]
    path = _write(tmp_path, "events.csv", content)
    before = _snapshot(engine)
    with pytest.raises(InputError) as caught:
        import_csv(engine, "events", path, now=NOW, chunk_rows=2, skip_invalid=True)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert _snapshot(engine) == before
    assert not (tmp_path / "events.csv.rejected.csv").exists()


def test_a_missing_file_is_an_input_error(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        import_csv(engine, "users", tmp_path / "absent.csv")


def test_many_bad_rows_list_the_first_twenty(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    rows = "".join(f"x{i},u1,view,yesterday,,,,,\n" for i in range(30))
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "events", _write(tmp_path, "events.csv", EVENTS + rows), now=NOW)
    assert caught.value.total == 30 and len(caught.value.errors) == 20
    assert "... and 10 more" in str(caught.value)


def test_skip_invalid_imports_the_good_rows_and_writes_the_rest_aside(
    engine: Engine, tmp_path: Path
) -> None:
    _load_shop(engine, tmp_path)
    bad = "e9,nobody,view,2024-03-01,,,,,\ne1,u1,cart,2024-03-09,,,,,\n"
    path = _write(tmp_path, "events.csv", EVENTS + bad)
    report = import_csv(engine, "events", path, now=NOW, skip_invalid=True, chunk_rows=2)
    assert (report.rows_read, report.inserted, report.rejected) == (5, 3, 2)
    assert report.rejects_path == tmp_path / "events.csv.rejected.csv"
    with report.rejects_path.open(newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [(r["event_id"], r["line"]) for r in rejected] == [("e9", "5"), ("e1", "6")]
    assert rejected[0]["reason"].startswith("user_id: unknown user 'nobody'")
    assert rejected[1]["reason"].startswith("event_id: duplicate event_id 'e1'")
    with engine.connect() as connection:
        assert connection.execute(select(Event.source_event_id)).scalars().all().count("e1") == 1


def test_rejects_go_where_asked_and_no_file_is_written_without_rejects(
    engine: Engine, tmp_path: Path
) -> None:
    _load_shop(engine, tmp_path)
    target = tmp_path / "out" / "bad.csv"
    target.parent.mkdir()
    path = _write(tmp_path, "events.csv", EVENTS + "e9,nobody,view,2024-03-01,,,,,\n")
    report = import_csv(engine, "events", path, skip_invalid=True, rejects_path=target)
    assert report.rejects_path == target and target.exists()
    clean = _write(tmp_path, "clean.csv", EVENTS)
    assert import_csv(engine, "events", clean, skip_invalid=True).rejects_path is None
    assert not (tmp_path / "clean.csv.rejected.csv").exists()


def test_events_without_event_id_dedupe_on_their_content(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    text = (
        "user_id,type,ts,product_id,amount\n"
        "u1,view,2024-03-01T10:00:00,p1,\n"
        "u1,purchase,2024-03-01T10:05:00,p1,129\n"
        "u1,purchase,2024-03-01T18:05:00+08:00,p1,129.00\n"
        "u2,view,2024-03-01T10:00:00,p1,\n"
    )
    path = _write(tmp_path, "events.csv", text)
    first = import_csv(engine, "events", path, now=NOW, chunk_rows=2)
    assert (first.inserted, first.unchanged) == (3, 1)
    second = import_csv(engine, "events", path, now=NOW)
    assert (second.inserted, second.unchanged) == (0, 4)


def test_progress_is_reported_for_every_row(engine: Engine, tmp_path: Path) -> None:
    _load_shop(engine, tmp_path)
    seen: list[int] = []
    path = _write(tmp_path, "events.csv", EVENTS)
    import_csv(engine, "events", path, progress=seen.append, chunk_rows=2)
    assert seen == [2, 1]


def test_responses_match_known_messages_and_keep_unknown_ones_unmatched(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with session_factory() as session:
        user = make_user(session)
        make_product(session)
        run = CampaignRun(campaign="winback", slot=NOW, as_of=NOW, status="done", counts={})
        session.add(run)
        session.flush()
        message = Message(
            run_id=run.id, user_id=user.id, campaign="winback", channel="email",
            products=[], is_test=False, idempotency_key="k1", status="sent", attempts=1,
            created_at=NOW,
        )
        session.add(message)
        session.commit()
        message_id = message.id
    text = (
        "message_id,type,ts,event_id,provider\n"
        f"{message_id},opened,2026-11-02T10:00:00Z,ev1,sendgrid\n"
        "999999,clicked,2026-11-02T10:05:00Z,ev2,sendgrid\n"
        f"{message_id},clicked,2026-11-02T10:06:00Z,,\n"
    )
    path = _write(tmp_path, "responses.csv", text)
    report = import_csv(engine, "responses", path, now=NOW)
    assert (report.inserted, report.unmatched) == (3, 1)
    again = import_csv(engine, "responses", path, now=NOW)
    assert (again.inserted, again.unchanged) == (0, 3)
    with Session(engine) as session:
        rows = {r.provider_event_id: r for r in session.scalars(select(Response))}
        assert rows["ev1"].message_id == message_id and rows["ev1"].provider == "sendgrid"
        assert rows["ev2"].message_id is None and rows["ev2"].payload["message_id"] == "999999"
        assert rows["ev1"].ts == datetime(2026, 11, 2, 10, tzinfo=UTC)
        # Imported responses have the webhook's effects: engagement only moves forward.
        assert session.get(Message, message_id).engagement == "clicked"


def test_an_imported_unsubscribe_suppresses_the_user(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with session_factory() as session:
        user = make_user(session)
        run = CampaignRun(campaign="winback", slot=NOW, as_of=NOW, status="done", counts={})
        session.add(run)
        session.flush()
        message = Message(
            run_id=run.id, user_id=user.id, campaign="winback", channel="email",
            products=[], is_test=False, idempotency_key="k1", status="sent", attempts=1,
            created_at=NOW,
        )
        session.add(message)
        session.commit()
        user_id, message_id = user.id, message.id
    path = _write(
        tmp_path, "responses.csv",
        f"message_id,type,ts,event_id\n{message_id},unsubscribed,2026-11-02T10:00:00Z,u1\n",
    )
    report = import_csv(engine, "responses", path, now=NOW, media={"email": "email"})
    assert report.suppressions == 1 and "1 suppression(s) added" in report.summary()
    with engine.connect() as connection:
        assert is_suppressed(connection, user_id, "email")


def test_bad_user_and_product_rows_name_their_column(engine: Engine, tmp_path: Path) -> None:
    users = _write(
        tmp_path,
        "users.csv",
        "user_id,timezone,locale,consent_email,email\n"
        "u1,Mars/Base,en,yes,a@example.com\n"
        "u2,UTC,english please,yes,b@example.com\n"
        "u3,UTC,en,perhaps,c@example.com\n"
        "u4,UTC,en,yes,not-an-email\n"
        ",UTC,en,yes,e@example.com\n"
        "u6,UTC,en,yes,f@example.com\n"
        "u6,UTC,en,yes,g@example.com\n",
    )
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "users", users)
    assert [str(e).split(":")[1:3] for e in caught.value.errors] == [
        ["2", " timezone"], ["3", " locale"], ["4", " consent_email"], ["5", " email"],
        ["6", " user_id"], ["8", " user_id"],
    ]
    products = _write(tmp_path, "products.csv", "product_id,price\np1,12.999\np2,free\n")
    with pytest.raises(InputErrors) as caught:
        import_csv(engine, "products", products)
    assert [str(e) for e in caught.value.errors] == [
        "products.csv:2: price: more decimals than CNY has (2 decimals): '12.999'",
        "products.csv:3: price: not a decimal amount like 129.50: 'free'",
    ]
    with engine.connect() as connection:
        assert connection.execute(select(User.id)).first() is None


def test_read_ahead_passes_on_errors_and_stops_its_thread_when_left_early() -> None:
    import threading

    from campaign.ingest.event_store import _prefetched

    def failing() -> Any:
        yield 1
        raise InputError("events.csv", "broken", line=3)

    with pytest.raises(InputError, match="events.csv:3: broken"):
        with _prefetched(failing()) as items:
            assert next(items) == 1
            next(items)
    with pytest.raises(RuntimeError):
        with _prefetched(iter(range(10_000))) as items:
            next(items)
            raise RuntimeError("the consumer failed")
    assert not [t for t in threading.enumerate() if t.name == "campaign-ingest-reader"]
