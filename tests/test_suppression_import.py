"""``campaign import suppressions FILE.csv`` through the real CLI, on both dialects."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from campaign.db.models import Suppression
from campaign.db.queries import is_suppressed
from tests.delivery_helpers import make_user

runner = CliRunner()


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[shop]\nphone_region = "CN"\n[database]\nurl = "{db_url}"\n'
        '[channels.promo]\nkind = "file"\nmedium = "email"\npath = "out"\n'
    )
    return path


def test_a_list_from_another_provider_suppresses_by_normalized_address(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    with Session(engine) as session:
        mailer = make_user(session, 1, email="Ann@Example.com", phone="+8613800000001")
        texter = make_user(session, 2, phone="+8613800000002")
        other = make_user(session, 3)
        session.commit()
        ids = mailer.id, texter.id, other.id
    listing = tmp_path / "optouts.csv"
    listing.write_text(
        "address,channel,reason\n"
        " ann@example.COM ,,unsubscribed\n"
        "138 0000 0002,sms,STOP at old provider\n"  # national, read in phone_region CN
        "gone@example.com,all,\n"
        "ann@example.com,promo,complaint\n",
        encoding="utf-8",
    )
    config = _config(tmp_path, db_url)
    result = runner.invoke(app, ["--config", str(config), "import", "suppressions", str(listing)])
    assert result.exit_code == 0, result.output
    summary = "4 row(s), 4 suppression(s) added, 0 already suppressed, 3 matched a user"
    assert summary in result.stdout
    with engine.connect() as connection:
        assert is_suppressed(connection, ids[0], "email")
        assert is_suppressed(connection, ids[1], "sms")
        assert not is_suppressed(connection, ids[1], "email")
        assert not is_suppressed(connection, ids[2], "email")
    again = runner.invoke(app, ["--config", str(config), "import", "suppressions", str(listing)])
    assert "0 suppression(s) added, 4 already suppressed" in again.stdout
    engine.dispose()


def test_bad_rows_are_listed_with_their_line_and_nothing_is_imported(
    db_url: str, tmp_path: Path
) -> None:
    listing = tmp_path / "optouts.csv"
    listing.write_text(
        "address,channel\nok@example.com,email\nnot an address,email\n"
        "x@example.com,a-channel-nobody-configured\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["--config", str(_config(tmp_path, db_url)), "import", "suppressions", str(listing)]
    )
    assert result.exit_code == 1
    assert f"{listing}:3: address: neither an email address nor a phone number" in result.output
    assert f"{listing}:4: channel: unknown channel 'a-channel-nobody-configured'" in result.output
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(select(Suppression.id)).first() is None
    engine.dispose()
