"""``campaign prune``: old texts, responses and browsing events go; every report count stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.errors import InputError
from campaign.config import load_config
from campaign.db.engine import session_scope
from campaign.db.models import Event, Message, Response, User
from campaign.db.retention import prune
from campaign.measurement.attribution import attribute
from campaign.measurement.reports.data import campaign_report
from tests.factories import make_events
from tests.test_attribution import PLANNED, build_scenario

runner = CliRunner()
# The scenario plans on 2026-11-01 and its purchases fall in the 20 days after.
REPORT_AT = "2026-12-01"


def _write_config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n[model]\nhorizon_days = 7\n\n'
        "[attribution]\nwindow_days = 7\n\n"
        '[channels.email]\nkind = "file"\npath = "outbox"\n\n'
        '[[campaigns]]\nname = "winback"\n'
        'variants = [{ name = "coupon", template = "winback" },'
        ' { name = "plain", template = "care", offer = false }]\n'
    )
    return path


def _seed(session_factory: sessionmaker[Session], engine: Engine) -> dict[str, int]:
    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
        m = scenario.messages
        for n, (role, kind) in enumerate([
            ("buyer", "delivered"), ("buyer", "opened"), ("buyer", "opened"),
            ("coupon", "delivered"), ("coupon", "clicked"), ("late", "delivered"),
        ]):
            session.add(Response(message_id=m[role], type=kind, ts=PLANNED + timedelta(hours=3),
                                 provider="webhook", provider_event_id=f"e{n}",
                                 payload={"raw": "x" * 50}))
        session.add(Response(message_id=None, type="opened", ts=PLANNED, provider="webhook",
                             provider_event_id="unmatched", payload={}))
        for user_id in scenario.users.values():
            make_events(session, session.get(User, user_id), [
                {"type": "view", "ts": PLANNED - timedelta(days=3)},
                {"type": "visit", "ts": PLANNED - timedelta(days=2)},
            ])
    with engine.begin() as connection:
        connection.execute(
            update(Message).values(subject="Hello Li", body="<p>Hello Li</p>", text_body="Hi")
        )
    attribute(engine, load_config(None, environ={}).attribution, horizon_days=7,
              now=datetime(2026, 12, 1, tzinfo=UTC))
    return scenario.messages


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        def n(table: type, *where: object) -> int:
            return int(connection.execute(
                select(func.count()).select_from(table).where(*where)
            ).scalar_one())

        return {
            "texts": n(Message, Message.body.is_not(None)),
            "responses": n(Response),
            "browsing": n(Event, Event.type != "purchase"),
            "purchases": n(Event, Event.type == "purchase"),
            "messages": n(Message),
        }


def _frames(engine: Engine, config_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    config = load_config(config_path, environ={})
    with engine.connect() as connection:
        report = campaign_report(connection, config, now=datetime(2026, 12, 1, tzinfo=UTC))
    return report.funnel, report.uplift


def test_prune_keeps_every_funnel_and_uplift_number_of_a_pruned_run(
    db_url: str, engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _seed(session_factory, engine)
    config = str(_write_config(tmp_path, db_url))
    report_args = ["--config", config, "report", "--as-of", REPORT_AT]
    before_cli = runner.invoke(app, report_args, terminal_width=200)
    assert before_cli.exit_code == 0, before_cli.output
    before = _frames(engine, Path(config))
    counts = _counts(engine)
    assert counts["texts"] == 8 and counts["responses"] == 7 and counts["browsing"] == 16
    days = (datetime.now(UTC) - PLANNED).days - 10  # everything the scenario made is older

    dry = runner.invoke(app, ["--config", config, "prune", "--older-than", str(days),
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith(
        "would remove 8 message text(s), 7 response(s), 16 browsing event(s) from before "
    ) and dry.stdout.strip().endswith("(dry run: nothing changed)")
    assert _counts(engine) == counts

    done = runner.invoke(app, ["--config", config, "prune", "--older-than", str(days), "--yes"])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("removed 8 message text(s), 7 response(s), 16 browsing")
    after = _counts(engine)
    assert after == {**counts, "texts": 0, "responses": 0, "browsing": 0}
    # The same funnel, uplift, revenue and churn figures, in the frames and on screen.
    funnel, uplift = _frames(engine, Path(config))
    pd.testing.assert_frame_equal(funnel, before[0])
    pd.testing.assert_frame_equal(uplift, before[1])
    assert funnel["opened"].sum() > 0 and funnel["clicked"].sum() > 0
    after_cli = runner.invoke(app, report_args, terminal_width=200)
    assert after_cli.stdout == before_cli.stdout
    again = runner.invoke(app, ["--config", config, "prune", "--older-than", str(days), "--yes"])
    assert again.exit_code == 0 and again.stdout.startswith("nothing to remove: 0 message")


def test_prune_in_small_batches_folds_each_messages_response_types_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    m = _seed(session_factory, engine)
    reports = []
    for _ in range(2):  # the second pass finds nothing: an interrupted prune just resumes
        reports.append(prune(engine, older_than_days=10, now=PLANNED + timedelta(days=30),
                             batch_rows=2, progress=lambda n: None))
    assert (reports[0].responses, reports[1].total) == (7, 0)
    with engine.connect() as connection:
        kept = dict(connection.execute(
            select(Message.id, Message.pruned_response_types)
            .where(Message.pruned_response_types.is_not(None))
        ).all())
    assert kept == {m["buyer"]: "delivered,opened", m["coupon"]: "clicked,delivered",
                    m["late"]: "delivered"}


def test_prune_refuses_a_retention_shorter_than_the_open_measurement_windows(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="shorter than the 90 days"):
        prune(engine, older_than_days=30, now=PLANNED, minimum=90)
    config = str(_write_config(tmp_path, db_url))
    refused = runner.invoke(app, ["--config", config, "prune", "--older-than", "3"])
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: --older-than: 3 days is shorter than the 7 days that attribution windows "
        "and churn horizons still read ([attribution] window_days, [model] horizon_days)"
    )
