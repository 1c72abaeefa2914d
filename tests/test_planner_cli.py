"""``campaign run`` and ``campaign preview`` end to end through the CLI, on SQLite files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from campaign.cli import app, common
from campaign.db.engine import make_engine
from campaign.db.models import CampaignRun, Coupon, Message
from tests.test_planner import add_user, make_config

runner = CliRunner()


@pytest.fixture
def shop(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config in ``tmp_path`` over a SQLite file with six scored users."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.console, "width", 160)
    make_config(tmp_path, sqlite_url, offer="true", holdout_share="0.2",
                channels='["email", "sms"]')
    engine = make_engine(sqlite_url)
    for n in range(5):
        add_user(engine, f"c{n}", risk=0.9 - n * 0.05)
    add_user(engine, "nomail", consent_email=False, consent_sms=False)
    engine.dispose()
    return tmp_path


def _state(folder: Path) -> dict[str, str]:
    """Every file in the folder with its SHA-256 (side files like -wal/-shm included)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _count(url: str, table: type) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        n = connection.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(n)


def test_preview_leaves_the_database_byte_for_byte_unchanged(shop: Path, sqlite_url: str) -> None:
    out = shop / "html"
    out.mkdir()
    before = _state(shop)
    result = runner.invoke(
        app, ["--config", str(shop / "config.toml"), "preview", "c", "--as-of", "2026-11-01",
              "--html", str(out / "preview.html")],
    )
    assert result.exit_code == 0, result.output
    assert _state(shop) == before  # no byte changed, and no -wal/-shm file appeared
    assert "c0" in result.stdout and "nomail" in result.stdout and "no_consent" in result.stdout
    assert "Subject: Hello Name" in result.stdout
    page = (out / "preview.html").read_text()
    assert "Preview of c" in page and "Nothing was written" in page and "<iframe" in page


def test_preview_of_one_user_shows_only_that_user(shop: Path) -> None:
    result = runner.invoke(
        app, ["--config", str(shop / "config.toml"), "preview", "c", "--user", "nomail",
              "--as-of", "2026-11-01"],
    )
    assert result.exit_code == 0, result.output
    assert "nomail" in result.stdout and "c0" not in result.stdout
    outside = runner.invoke(
        app, ["--config", str(shop / "config.toml"), "preview", "c", "--user", "stranger"],
    )
    assert outside.exit_code == 0 and "user stranger is not in the audience of c" in outside.stdout


def test_run_plans_once_and_the_second_run_of_the_slot_plans_nothing(
    shop: Path, sqlite_url: str
) -> None:
    args = ["--config", str(shop / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was written" in dry.stdout
    assert _count(sqlite_url, Message) == 0 and _count(sqlite_url, Coupon) == 0
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "planned" in first.stdout and "no_consent" in first.stdout
    assert "development key" not in first.stderr  # links use the database's own key
    assert _count(sqlite_url, Message) == 6
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "already planned: nothing new" in second.stdout
    assert _count(sqlite_url, Message) == 6 and _count(sqlite_url, CampaignRun) == 1


def test_run_test_to_queues_to_the_seed_list_only(shop: Path, sqlite_url: str) -> None:
    seeds = shop / "seeds.txt"
    seeds.write_text("qa@shop.test\n")
    result = runner.invoke(
        app, ["--config", str(shop / "config.toml"), "run", "c", "--test-to", str(seeds)]
    )
    assert result.exit_code == 0, result.output
    assert "1 message(s) queued" in result.stdout and "qa@shop.test" in result.stdout
    assert _count(sqlite_url, Message) == 1 and _count(sqlite_url, Coupon) == 0


def test_unknown_campaign_and_bad_dates_are_one_line_errors(shop: Path) -> None:
    config = str(shop / "config.toml")
    unknown = runner.invoke(app, ["--config", config, "run", "nope"])
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "error: campaign not found: nope (known: c)"
    bad = runner.invoke(app, ["--config", config, "run", "c", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of" in bad.stderr


def test_a_missing_template_set_stops_the_command_at_start(shop: Path) -> None:
    path = shop / "config.toml"
    path.write_text(path.read_text().replace('template = "t"', 'template = "gone"'))
    result = runner.invoke(app, ["--config", str(path), "preview", "c"])
    assert result.exit_code == 1
    assert "variants[0].template: template set 'gone' not found" in result.stderr


def test_a_run_before_any_scores_says_what_to_do_and_records_nothing(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_config(tmp_path, sqlite_url)
    result = runner.invoke(
        app, ["--config", str(tmp_path / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
    )
    assert result.exit_code == 1
    assert "churn scores not found" in result.stderr
    assert "run 'campaign train' and 'campaign score' first" in result.stderr
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        statuses = connection.execute(select(CampaignRun.status)).scalars().all()
    engine.dispose()
    assert statuses == ["failed"]  # recorded, and a failed slot is planned again later


@pytest.mark.parametrize("days", [-12, 12], ids=["clock-behind", "clock-ahead"])
def test_a_pinned_clock_never_queues_a_run_that_expires_unsent_or_never_comes_due(
    shop: Path, sqlite_url: str, days: int
) -> None:
    # [clock] as_of picks what the run looks at; due and expiry come from the real clock.
    from datetime import UTC, datetime, timedelta

    config = shop / "config.toml"
    pinned = datetime.now(UTC) + timedelta(days=days)
    text = config.read_text().replace(
        "[delivery]\n",
        '[delivery]\nquiet_hours = { start = "00:00", end = "00:00" }\n'
        "quiet_hours_by_medium = {}\n",
    )
    config.write_text(text + f'\n[clock]\nas_of = "{pinned:%Y-%m-%dT%H:%M:%SZ}"\n')
    planned = runner.invoke(app, ["--config", str(config), "run", "c"])
    assert planned.exit_code == 0, planned.output
    before = datetime.now(UTC)
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.next_attempt_at, Message.expires_at).where(Message.status == "queued")
        ).all()
        coupons = connection.execute(select(Coupon.expires_at)).scalars().all()
    assert rows, "the run queued nothing"
    assert all(due is None or due <= before for due, _ in rows)
    assert all(expires > before for _, expires in rows)
    assert all(expires > before for expires in coupons)
    sent = runner.invoke(app, ["--config", str(config), "send", "--once"])
    assert sent.exit_code == 0, sent.output
    with engine.connect() as connection:
        statuses = connection.execute(select(Message.status)).scalars().all()
    engine.dispose()
    assert statuses.count("sent") == len(rows)


def test_sigterm_during_a_run_rolls_back_with_one_line(
    shop: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    from campaign.planner import run as planner_run

    real = planner_run.plan_run

    def terminated_midway(*args: object, **kwargs: object) -> object:
        # The service manager stops us while the run is being written.
        kwargs["progress"] = lambda n: os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planner_run, "plan_run", terminated_midway)
    result = runner.invoke(
        app, ["--config", str(shop / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
    )
    assert result.exit_code == 143
    assert result.output.strip().splitlines() == [
        "terminated: run of c rolled back, nothing planned and no coupon reserved"
    ]
    assert _count(sqlite_url, Message) == 0 and _count(sqlite_url, CampaignRun) == 0
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)


def test_run_and_send_progress_bars_show_their_totals_on_a_terminal(
    shop: Path, sqlite_url: str
) -> None:
    from tests.tty import bar_counts, run_on_terminal

    config = str(shop / "config.toml")
    code, _out, screen = run_on_terminal(
        ["--config", config, "run", "c", "--as-of", "2026-11-01"], shop
    )
    assert code == 0, screen
    # The run learns its audience (six users) only after scoring: the bar then says so.
    planning = bar_counts(screen, "planning c")
    assert planning and planning[-1] == "6/6", screen
    assert not any("?" in count for count in planning)
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        queued = connection.execute(
            select(func.count()).select_from(Message).where(Message.status == "queued")
        ).scalar_one()
    engine.dispose()
    code, _out, screen = run_on_terminal(["--config", config, "send", "--once"], shop)
    assert code == 0, screen
    sending = bar_counts(screen, "sending")
    assert queued and sending[-1] == f"{queued}/{queued}", screen
    assert all(c.endswith(f"/{queued}") for c in sending)
