"""``campaign run`` with ``rank_by = "uplift"`` end to end through the CLI, on a SQLite
file: risk (saying why) before the model, then the uplift-ranked audience."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app, common
from campaign.db.engine import make_engine
from campaign.db.models import CampaignRun, Message, User
from tests.targeting_shop import build_shop
from tests.test_planner_targeting import write_config

runner = CliRunner()


@pytest.fixture
def shop(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.console, "width", 200)
    engine = make_engine(sqlite_url)
    build_shop(engine, 1_500)
    engine.dispose()
    write_config(tmp_path, sqlite_url, audience='rank_by = "uplift"\nlearning_share = 0.1',
                 campaign="max_recipients = 100\nholdout_share = 0.1")
    return tmp_path / "config.toml"


def test_campaign_run_ranks_by_uplift_once_the_model_is_trained_and_says_which(
    shop: Path, sqlite_url: str
) -> None:
    config = ["--config", str(shop)]
    first = runner.invoke(app, [*config, "run", "c", "--as-of", "2026-11-01"])
    assert first.exit_code == 0, first.output
    assert ("ranked by risk instead of uplift, sleeping dogs not excluded, 10% learning "
            "share: campaign 'c' has no uplift model yet") in first.stdout
    assert "learning queued (in the above)" in first.stdout
    status = runner.invoke(app, [*config, "status"])
    assert status.exit_code == 0, status.output
    assert "c: ranked by risk instead of uplift" in status.stdout

    trained = runner.invoke(app, [*config, "train", "uplift", "--campaign", "c"])
    assert trained.exit_code == 0, trained.output
    preview = runner.invoke(app, [*config, "preview", "c", "--as-of", "2026-11-01",
                                  "--format", "json"])
    assert preview.exit_code == 0, preview.output
    head = json.loads(preview.stdout)["preview"][0]
    assert head["ranked_by"] == "uplift"
    assert head["targeting"].startswith("ranked by uplift (uplift model version ")

    second = runner.invoke(app, [*config, "run", "c", "--as-of", "2026-11-01",
                                 "--slot", "2026-11-02"])
    assert second.exit_code == 0, second.output
    line = next(x for x in second.stdout.splitlines() if x.startswith("ranked by"))
    assert line.startswith("ranked by uplift (uplift model version ")
    assert line.endswith("converted), without predicted sleeping dogs, 10% learning share")
    assert "sleeping_dog" in second.stdout

    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        runs = connection.execute(
            select(CampaignRun.ranked_by, CampaignRun.targeting_note).order_by(CampaignRun.id)
        ).all()
        dogs = connection.execute(
            select(User.external_id).join(Message, Message.user_id == User.id).where(
                Message.skip_reason == "sleeping_dog")
        ).scalars().all()
        messaged = set(connection.execute(
            select(User.external_id).join(Message, Message.user_id == User.id).where(
                Message.status.in_(("queued", "held_out")),
                Message.run_id == select(CampaignRun.id).where(
                    CampaignRun.ranked_by == "uplift").scalar_subquery())
        ).scalars())
    engine.dispose()
    assert [r.ranked_by for r in runs] == ["risk", "uplift"]
    assert runs[1].targeting_note == line
    assert dogs and not set(dogs) & messaged
