"""``campaign forget``: personal data erased, counts kept, the person never messaged again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.errors import NotFound
from campaign.db.models import Message, Response, Suppression, User
from campaign.db.queries import address_hash, is_suppressed
from campaign.responses.events import InboundEvent, ResponseType
from campaign.responses.forget import forget_user
from campaign.responses.recording import record_events
from tests.factories import make_events, make_user
from tests.responses_helpers import NOW, make_sent_message


def _seed(session_factory: sessionmaker[Session], engine: Engine) -> tuple[int, str, str, str]:
    with session_factory() as session:
        user = make_user(
            session, name="Li Wei", email="Li.Wei@Example.com", attributes={"vip": "yes"}
        )
        make_events(session, user, [{}, {}])
        message = make_sent_message(session, user, address_override="seed@shop.example")
        session.commit()
        ids = user.id, user.external_id, user.email, user.phone
        mid = message.id
    with engine.begin() as connection:
        record_events(
            connection,
            [
                InboundEvent(
                    "t",
                    "r1",
                    ResponseType.OPENED,
                    NOW,
                    message_id=mid,
                    payload={"note": "free text"},
                ),
                # Unmatched, naming the person's address (only its hash is stored).
                InboundEvent(
                    "t",
                    "r2",
                    ResponseType.SOFT_BOUNCED,
                    NOW,
                    address="li.wei@example.com",
                    payload={"address_hash": address_hash("li.wei@example.com"), "reason": "full"},
                ),
                InboundEvent("t", "r3", ResponseType.OPENED, NOW, payload={"other": "person"}),
            ],
            now=NOW,
        )
    return ids


def test_forgetting_erases_contact_details_and_texts_but_keeps_counts(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    uid, external, email, phone = _seed(session_factory, engine)
    report = forget_user(engine, external, now=NOW)
    assert (report.messages_scrubbed, report.responses_scrubbed, report.suppressions_added) == (
        1,
        2,
        2,
    )
    with session_factory() as session:
        user = session.get(User, uid)
        assert user is not None
        assert (user.email, user.phone, user.name, user.attributes) == (None, None, None, {})
        assert user.forgotten_at is not None and not user.consent_email
        message = session.scalars(select(Message).where(Message.user_id == uid)).one()
        assert (message.subject, message.body, message.text_body, message.address_override) == (
            None,
        ) * 4
        assert message.status == "sent" and message.engagement == "opened"
        payloads = dict(session.execute(select(Response.provider_event_id, Response.payload)).all())
        assert payloads == {"r1": {}, "r2": {}, "r3": {"other": "person"}}
        assert session.scalar(select(func.count()).select_from(Response)) == 3
        rows = session.execute(
            select(Suppression.user_id, Suppression.address_hash, Suppression.channel)
        ).all()
        assert sorted(rows, key=str) == sorted(
            [(uid, address_hash(email), "all"), (uid, address_hash(phone), "all")], key=str
        )
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "email") and is_suppressed(connection, uid, "sms")


def test_a_forgotten_address_stays_suppressed_when_the_shop_imports_it_again(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _uid, external, email, _phone = _seed(session_factory, engine)
    forget_user(engine, external, now=NOW)
    with session_factory() as session:
        again = make_user(session, email=" li.wei@EXAMPLE.com ")
        session.commit()
        new_id = again.id
    with engine.connect() as connection:
        assert is_suppressed(connection, new_id, "email")


def test_forgetting_twice_adds_nothing(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _uid, external, _email, _phone = _seed(session_factory, engine)
    forget_user(engine, external, now=NOW)
    second = forget_user(engine, external, now=NOW)
    assert second.already_forgotten and second.suppressions_added == 0


def test_an_unknown_user_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="user not found: nobody"):
        forget_user(engine, "nobody", now=NOW)


def test_the_forget_command_reports_and_refuses_unknown_users(
    sqlite_url: str, tmp_path: Path
) -> None:
    from campaign.db.engine import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    _uid, external, _email, _phone = _seed(make_session_factory(engine), engine)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "forget", external, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"forgot user {external}" in result.output
    missing = runner.invoke(app, ["--config", str(config), "forget", "ghost"])
    assert missing.exit_code == 1
    assert "error: user not found: ghost" in missing.output
    engine.dispose()


def _forget_cli(db_url: str, tmp_path: Path) -> tuple[Engine, str, Path]:
    from campaign.db.engine import make_engine, make_session_factory

    engine = make_engine(db_url)
    _uid, external, _email, _phone = _seed(make_session_factory(engine), engine)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return engine, external, config


def _email_of(engine: Engine, external: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(User.email).where(User.external_id == external)
        ).scalar_one()


def test_forget_dry_run_shows_what_would_go_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    engine, external, config = _forget_cli(db_url, tmp_path)
    before = _email_of(engine, external)
    result = CliRunner().invoke(app, ["--config", str(config), "forget", external, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"would forget user {external}: email, phone, name, attributes; 1 message text(s) and "
        "2 response payload(s) scrubbed, 2 suppression(s) added (dry run: nothing changed)"
    )
    assert _email_of(engine, external) == before is not None
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Suppression)).scalar() == 0
    engine.dispose()


def test_forget_asks_first_and_a_no_or_no_answer_erases_nothing(
    db_url: str, tmp_path: Path
) -> None:
    engine, external, config = _forget_cli(db_url, tmp_path)
    runner = CliRunner()
    for answer in ("n\n", ""):  # "" is a script without --yes: stdin at its end
        refused = runner.invoke(app, ["--config", str(config), "forget", external], input=answer)
        assert refused.exit_code == 1
        assert f"about to forget user {external}: email, phone, name, attributes;" in refused.stderr
        assert refused.stderr.strip().endswith(
            f"error: user {external} not forgotten: not confirmed (--yes skips asking)"
        )
        assert _email_of(engine, external) is not None
    agreed = runner.invoke(app, ["--config", str(config), "forget", external], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert f"forgot user {external}: email, phone, name, attributes;" in agreed.stdout
    assert _email_of(engine, external) is None
    engine.dispose()
