"""The daemon's run state, missed slots, failure isolation, pauses and ingest jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import Config
from campaign.daemon.ingest_jobs import ingest_folder, ingest_query
from campaign.daemon.jobs import JobContext, tick_campaign
from campaign.daemon.logging import redact
from campaign.daemon.metrics import Metrics
from campaign.daemon.scheduler import build_scheduler
from campaign.daemon.slots import make_trigger, plan_slots
from campaign.db.models import CampaignRun, IngestFile, Message, RunStatus, User
from campaign.db.pauses import ALL, set_paused
from campaign.delivery.outbox import claim_batch
from campaign.planner import plan_run
from campaign.planner.outcomes import PAUSED
from tests.daemon_helpers import write_config
from tests.test_planner import add_user

# Campaigns tick every day at 10:00 UTC in these tests.
SLOT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, value: datetime) -> None:
        self.value = value

    def __call__(self) -> datetime:
        return self.value


def context(engine: Engine, config: Config, now: datetime) -> JobContext:
    return JobContext(engine, config, Clock(now), Metrics())


def runs(engine: Engine, campaign: str = "c") -> list[tuple[datetime, str, str | None]]:
    with engine.connect() as connection:
        return [
            (row.slot, row.status, row.error)
            for row in connection.execute(
                select(CampaignRun)
                .where(CampaignRun.campaign == campaign)
                .order_by(CampaignRun.slot)
            )
        ]


def message_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Message)).scalar_one())


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- slots ---------------------------------------------------------------------------


def test_missed_slots_coalesce_into_the_newest_when_it_is_within_grace(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url)
    add_user(engine, "a")
    tick_campaign(context(engine, config, SLOT + timedelta(minutes=1)), "c")
    # Down for three days; back 20 minutes after the newest slot (grace: 10 minutes).
    tick_campaign(context(engine, config, SLOT + timedelta(days=3, minutes=5)), "c")
    assert [(slot, status) for slot, status, _ in runs(engine)] == [
        (SLOT, "done"),
        (SLOT + timedelta(days=1), "missed"),
        (SLOT + timedelta(days=2), "missed"),
        (SLOT + timedelta(days=3), "done"),
    ]
    assert message_count(engine) == 2


def test_a_slot_older_than_the_grace_time_is_recorded_missed_and_not_run(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url)
    add_user(engine, "a")
    tick_campaign(context(engine, config, SLOT), "c")
    tick_campaign(context(engine, config, SLOT + timedelta(days=1, minutes=30)), "c")
    slots = runs(engine)
    assert [(s, st) for s, st, _ in slots] == [(SLOT, "done"), (SLOT + timedelta(days=1), "missed")]
    assert "grace" in (slots[1][2] or "")
    assert message_count(engine) == 1


def test_a_restart_never_runs_the_same_slot_twice(engine: Engine, db_url: str, root: Path) -> None:
    config = write_config(root, db_url)
    add_user(engine, "a")
    for _ in range(3):  # three "restarts" within the same slot's grace time
        tick_campaign(context(engine, config, SLOT + timedelta(minutes=2)), "c")
    assert [st for _, st, _ in runs(engine)] == ["done"]
    assert message_count(engine) == 1


def test_first_start_runs_a_recent_slot_and_records_no_history(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url)
    add_user(engine, "a")
    tick_campaign(context(engine, config, SLOT + timedelta(hours=5)), "c")
    assert runs(engine) == []  # 5 h late, grace 10 min: nothing to do, nothing missed
    tick_campaign(context(engine, config, SLOT + timedelta(days=1, minutes=3)), "c")
    assert [st for _, st, _ in runs(engine)] == ["done"]


@given(
    minutes=st.integers(min_value=0, max_value=60 * 24 * 3),
    grace=st.integers(min_value=0, max_value=600),
)
def test_slot_plan_runs_at_most_the_newest_slot_and_misses_only_older_ones(
    minutes: int, grace: int
) -> None:
    from campaign.config import ScheduleConfig

    trigger = make_trigger(ScheduleConfig(cron="*/7 * * * *", timezone="Asia/Kolkata"))
    last = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    now = last + timedelta(minutes=minutes, seconds=13)
    plan = plan_slots(trigger, last, now, timedelta(minutes=grace))
    every = sorted(plan.missed + ([plan.run] if plan.run else []))
    assert all(last < slot <= now for slot in every)
    assert len(set(every)) == len(every)
    if plan.run is not None:
        assert plan.run == every[-1] and now - plan.run <= timedelta(minutes=grace)
    elif every:
        assert now - every[-1] > timedelta(minutes=grace)


# -- failures ------------------------------------------------------------------------


def test_one_failing_campaign_is_recorded_and_the_others_still_run(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url, campaigns=("bad", "good"), broken=("bad",))
    add_user(engine, "a")
    ctx = context(engine, config, SLOT + timedelta(minutes=1))
    tick_campaign(ctx, "bad")
    tick_campaign(ctx, "good")
    [(_, status, error)] = runs(engine, "bad")
    assert status == RunStatus.FAILED and error and "TemplateError" in error
    assert [st for _, st, _ in runs(engine, "good")] == ["done"]


def test_the_scheduler_has_one_coalescing_single_instance_job_per_campaign(
    sqlite_url: str, root: Path
) -> None:
    from campaign.db.engine import make_engine

    config = write_config(
        root,
        sqlite_url,
        campaigns=("a", "b"),
        daemon={"retrain": True, "ingest": {"folder": "drops"}},
    )
    engine = make_engine(sqlite_url)
    scheduler = build_scheduler(context(engine, config, SLOT))
    scheduler.start(paused=True)  # defaults are applied when jobs reach the job store
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"campaign:a", "campaign:b", "model:retrain", "ingest:folder"}
        for job in jobs.values():
            assert job.max_instances == 1 and job.coalesce is True
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()


# -- pauses --------------------------------------------------------------------------


def test_a_pause_stops_the_next_claim_and_planning_without_a_restart(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url, campaigns=("c", "d"))
    add_user(engine, "a")
    for name in ("c", "d"):
        plan_run(engine, config, name, as_of=SLOT, slot=SLOT, now=lambda: SLOT)
    set_paused(engine, "c", True, now=SLOT, reason="typo in subject")
    claimed = claim_batch(engine, owner="w", now=SLOT, lease_seconds=60, limit=10)
    assert [m.campaign for m in claimed] == ["d"]
    set_paused(engine, ALL, True, now=SLOT)
    assert (
        plan_run(
            engine, config, "d", as_of=SLOT, slot=SLOT + timedelta(days=1), now=lambda: SLOT
        ).outcome
        == PAUSED
    )
    set_paused(engine, ALL, False, now=SLOT)
    assert claim_batch(engine, owner="w", now=SLOT, lease_seconds=60, limit=10) == []
    set_paused(engine, "c", False, now=SLOT)
    assert [
        m.campaign for m in claim_batch(engine, owner="w", now=SLOT, lease_seconds=60, limit=10)
    ] == ["c"]


def test_a_slot_that_falls_while_paused_is_recorded_as_missed(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = write_config(root, db_url)
    add_user(engine, "a")
    set_paused(engine, "c", True, now=SLOT)
    tick_campaign(context(engine, config, SLOT + timedelta(minutes=1)), "c")
    assert [(st, err) for _, st, err in runs(engine)] == [("missed", "paused")]
    assert message_count(engine) == 0


def test_pause_and_resume_commands_store_the_switch(sqlite_url: str, root: Path) -> None:
    write_config(root, sqlite_url, campaigns=("c", "d"))
    runner = CliRunner()
    result = runner.invoke(
        app, ["--config", str(root / "config.toml"), "pause", "c", "--reason", "oops"]
    )
    assert result.exit_code == 0, result.output
    assert "oops" in result.output
    result = runner.invoke(app, ["--config", str(root / "config.toml"), "pause", "--all"])
    assert result.exit_code == 0 and "PAUSED" in result.output
    result = runner.invoke(app, ["--config", str(root / "config.toml"), "resume", "--all"])
    assert result.exit_code == 0 and "(all)" not in result.output
    result = runner.invoke(app, ["--config", str(root / "config.toml"), "pause", "nope"])
    assert result.exit_code == 1 and "nope" in result.output
    result = runner.invoke(app, ["--config", str(root / "config.toml"), "pause"])
    assert result.exit_code == 2


# -- logs ----------------------------------------------------------------------------


@given(
    local=st.from_regex(r"[a-z0-9._%+-]{2,20}", fullmatch=True),
    domain=st.from_regex(r"[a-z0-9-]{1,12}\.(com|cn|co\.uk|shop)", fullmatch=True),
    prefix=st.sampled_from(["", "to ", "user=", "<"]),
)
def test_redaction_never_leaves_a_full_email_address(local: str, domain: str, prefix: str) -> None:
    address = f"{local}@{domain}"
    out = redact(f"{prefix}{address} failed")
    assert address not in out
    assert domain in out


@given(digits=st.from_regex(r"[1-9][0-9]{7,13}", fullmatch=True))
def test_redaction_never_leaves_a_full_e164_phone_number(digits: str) -> None:
    out = redact(f"sms to +{digits}: 429")
    assert digits not in out and digits[-2:] in out


def test_redaction_keeps_ids_counts_and_timestamps() -> None:
    text = "campaign.run.finished run_id=123456 queued=42 slot=2026-11-02T10:00:00+00:00"
    assert redact(text) == text


# -- ingest --------------------------------------------------------------------------


def test_a_users_drop_reads_national_phones_in_the_shop_region(engine: Engine, root: Path) -> None:
    from campaign.db.models import User

    drops = root / "drops"
    drops.mkdir()
    (drops / "users-1.csv").write_text("user_id,phone,locale\nu1,(201) 555-0123,en\n")
    later = Clock(datetime.now(UTC) + timedelta(minutes=1))
    seen = dict(ingest_folder(engine, drops, now=later, settle_seconds=1, phone_region="US"))
    assert seen == {"users-1.csv": "imported"}
    with engine.connect() as connection:
        stored = connection.execute(
            select(User.phone, User.phone_original).where(User.external_id == "u1")).one()
    assert tuple(stored) == ("+12015550123", "(201) 555-0123")


def test_a_csv_drop_is_imported_once_and_moved_aside_with_its_rejects(
    engine: Engine, root: Path
) -> None:
    drops = root / "drops"
    drops.mkdir()
    (drops / "users-1.csv").write_text(
        "user_id,email,consent_email\nu1,u1@example.com,true\n,bad,true\n"
    )
    (drops / "events-1.csv").write_text("user_id,type,ts\nu1,visit,2026-11-01T00:00:00\n")
    (drops / "products.csv").write_text("not,a,products,file\n")
    (drops / "notes.txt").write_text("hello")
    later = Clock(datetime.now(UTC) + timedelta(minutes=1))
    seen = dict(ingest_folder(engine, drops, now=later, settle_seconds=1))
    assert seen == {
        "users-1.csv": "imported",
        "events-1.csv": "imported",
        "products.csv": "rejected",
        "notes.txt": "unknown",
    }
    assert sorted(p.name for p in (drops / "done").iterdir()) == ["events-1.csv", "users-1.csv"]
    rejected = sorted(p.name for p in (drops / "rejected").iterdir())
    assert "products.csv" in rejected and "products.csv.reason.txt" in rejected
    assert "users-1.rejects.csv" in rejected
    # The same content dropped again is not imported again.
    (drops / "users-1.csv").write_text(
        "user_id,email,consent_email\nu1,u1@example.com,true\n,bad,true\n"
    )
    assert dict(ingest_folder(engine, drops, now=later, settle_seconds=1)) == {
        "users-1.csv": "duplicate",
        "notes.txt": "unknown",
    }
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(IngestFile)).scalar() == 3
        assert connection.execute(select(func.count()).select_from(User)).scalar() == 1


def test_a_file_still_being_written_waits_for_the_next_pass(engine: Engine, root: Path) -> None:
    (root / "drops").mkdir()
    (root / "drops" / "users.csv").write_text("user_id\nu1\n")
    seen = ingest_folder(engine, root / "drops", now=Clock(datetime.now(UTC)), settle_seconds=60)
    assert seen == [("users.csv", "waiting")]


def test_a_shop_query_loads_through_the_same_validation(engine: Engine, root: Path) -> None:
    from sqlalchemy import create_engine, text

    shop = root / "shop.db"
    shop_engine = create_engine(f"sqlite:///{shop}")
    with shop_engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id TEXT, mail TEXT, opted_in INTEGER)"))
        connection.execute(
            text("INSERT INTO customers VALUES ('s1', 's1@example.com', 1), ('', 'x', 0)")
        )
    shop_engine.dispose()
    report = ingest_query(
        engine,
        "users",
        f"sqlite:///{shop}",
        "SELECT id AS user_id, mail AS email,"
        " CASE opted_in WHEN 1 THEN 'true' ELSE 'false' END AS consent_email FROM customers",
        now=Clock(SLOT),
        rejects_dir=root / "rejected",
    )
    assert (report.inserted, report.rejected) == (1, 1)
    with engine.connect() as connection:
        assert (
            connection.execute(select(User.email).where(User.external_id == "s1")).scalar()
            == "s1@example.com"
        )


# -- shared rate ---------------------------------------------------------------------


def test_each_live_sender_gets_its_share_of_a_channels_rate(
    engine: Engine, db_url: str, root: Path
) -> None:
    from campaign.daemon.workers import RateShare, beat, forget_beat

    config = write_config(root, db_url, sink_url="http://127.0.0.1:9")
    now = datetime(2026, 11, 2, tzinfo=UTC)
    assert beat(engine, "a", "daemon", now=now, live_seconds=15) == 1
    assert beat(engine, "b", "worker", now=now, live_seconds=15) == 2
    share = RateShare(config)
    bucket = share.bucket("email")
    assert bucket is not None
    share.set_live(2)
    assert bucket.rate == pytest.approx(5000.0)
    # "b" stops beating: after three beats it no longer counts.
    assert beat(engine, "a", "daemon", now=now + timedelta(seconds=20), live_seconds=15) == 1
    forget_beat(engine, "a")
    assert beat(engine, "c", "worker", now=now + timedelta(seconds=20), live_seconds=15) == 1
