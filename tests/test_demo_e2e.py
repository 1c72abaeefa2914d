"""``campaign demo``: its folder rules, its figures on both dialects, and the real CLI twice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from campaign.common.errors import InputError
from campaign.config import load_config
from campaign.db.models import Event, Message, Product, User
from campaign.demo.run import DEMO_STEPS, run_steps
from campaign.demo.shop import DEMO_AS_OF, generate_shop, write_csv
from campaign.demo.steps import (
    DemoContext,
    DemoSettings,
    demo_config_text,
    load_demo_config,
    prepare_folder,
    shop_figures,
)
from campaign.ingest import import_csv
from tests.demo_helpers import (
    DEMO_SEED,
    DEMO_USERS,
    DemoShop,
    campaign_cli,
    planted_effects,
    suggested_commands,
    targeting_comparison,
)

ROOT = Path(__file__).resolve().parents[1]


def test_demo_config_is_valid_and_names_its_three_campaigns(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(demo_config_text(), encoding="utf-8")
    config = load_config(tmp_path / "config.toml", environ={})
    assert [c.name for c in config.campaigns] == ["winback", "care", "retain"]
    assert config.campaign("winback").variants[0].offer is True
    assert config.campaign("care").variants[0].offer is False
    retain = config.campaign("retain")
    assert retain.audience.rank_by == "uplift" and retain.audience.learning_share == 1.0
    assert not retain.audience.excludes_sleeping_dogs and retain.max_recipients
    assert all(channel.kind == "file" for channel in config.channels.values())
    assert config.database_url() == f"sqlite:///{(tmp_path / 'campaign.db').resolve()}"
    assert config.resolve_path(config.channels["email"].path or "") == tmp_path / "outbox/email"


def test_a_new_folder_gets_a_config_and_a_marker(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    settings, created = prepare_folder(folder, users=None, seed=7, fresh=False, default_users=50)
    assert created and settings == DemoSettings(50, 7)
    assert json.loads((folder / "demo.json").read_text())["users"] == 50
    assert load_demo_config(folder).shop.currency == "CNY"


def test_reusing_a_folder_keeps_its_config_and_its_size(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare_folder(folder, users=40, seed=7, fresh=False, default_users=3000)
    (folder / "config.toml").write_text(demo_config_text() + "\n# edited\n")
    settings, created = prepare_folder(folder, users=None, seed=7, fresh=False,
                                       default_users=3000)
    assert not created and settings.users == 40
    made_with_seed_3, _ = prepare_folder(tmp_path / "three", users=10, seed=3, fresh=False,
                                         default_users=3000)
    reused, _ = prepare_folder(tmp_path / "three", users=None, seed=None, fresh=False,
                               default_users=3000)
    assert reused == made_with_seed_3 == DemoSettings(10, 3)
    assert (folder / "config.toml").read_text().endswith("# edited\n")


def test_a_deleted_config_is_written_again_on_reuse(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare_folder(folder, users=40, seed=7, fresh=False, default_users=3000)
    (folder / "config.toml").unlink()
    prepare_folder(folder, users=40, seed=7, fresh=False, default_users=3000)
    assert (folder / "config.toml").read_text() == demo_config_text()


def test_another_size_needs_fresh_and_fresh_recreates(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare_folder(folder, users=40, seed=7, fresh=False, default_users=3000)
    (folder / "campaign.db").write_bytes(b"old")
    with pytest.raises(InputError, match="--users 40 .*--fresh"):
        prepare_folder(folder, users=60, seed=7, fresh=False, default_users=3000)
    settings, created = prepare_folder(folder, users=60, seed=7, fresh=True, default_users=3000)
    assert created and settings.users == 60 and not (folder / "campaign.db").exists()


def test_a_folder_that_is_not_a_demo_is_never_touched(tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("do not delete")
    for fresh in (False, True):
        with pytest.raises(InputError, match="not a demo folder"):
            prepare_folder(folder, users=None, seed=7, fresh=fresh, default_users=10)
    assert (folder / "thesis.txt").read_text() == "do not delete"


def test_shop_figures_match_the_generated_frames(engine: Engine, tmp_path: Path) -> None:
    shop = generate_shop(60, seed=5)
    paths = write_csv(shop, tmp_path)
    for kind in ("users", "products", "events"):
        import_csv(engine, kind, paths[kind], now=DEMO_AS_OF)  # type: ignore[arg-type]
    figures = shop_figures(engine, paths["truth"], DEMO_AS_OF)
    purchases = shop.events[shop.events["type"] == "purchase"]
    assert figures["users"] == 60 and figures["products"] == len(shop.products)
    assert figures["events_by_type"] == shop.events["type"].value_counts().to_dict()
    assert figures["customers"] == purchases["user_id"].nunique()
    cents = sum(int(a.replace(".", "")) for a in purchases["amount"])
    assert figures["revenue_cents"] == cents
    assert figures["first_event"] == shop.events["ts"].min().to_pydatetime()
    truth = shop.truth.set_index("user_id").loc[purchases["user_id"].unique()]
    assert figures["fading_share"] == pytest.approx(
        (truth["churn_started_at"] < pd.Timestamp(DEMO_AS_OF)).mean()
    )


def test_the_steps_run_twice_in_process_and_the_second_changes_nothing(tmp_path: Path) -> None:
    from campaign.db.engine import make_engine

    folder = tmp_path / "demo"
    settings, _ = prepare_folder(folder, users=40, seed=7, fresh=False, default_users=3000)
    config = load_demo_config(folder)
    engine = make_engine(config.database_url())
    try:
        context = DemoContext(folder=folder, config=config, engine=engine, settings=settings)
        first = run_steps(context)
        second = run_steps(context)
    finally:
        engine.dispose()
    assert [s.title for s in first][:3] == ["Database", "Generated shop", "Import"]
    assert len(first) == len(second) == len(DEMO_STEPS)
    assert first[0].changed and first[1].changed and first[2].changed
    assert not any(summary.changed for summary in second)
    assert first[-1].lines == second[-1].lines


# -- the real command, in a subprocess ---------------------------------------------------


def _campaign(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return campaign_cli(*args, cwd=cwd)


def _counts(database: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return {
                "users": connection.scalar(select(func.count()).select_from(User)) or 0,
                "products": connection.scalar(select(func.count()).select_from(Product)) or 0,
                "events": connection.scalar(select(func.count()).select_from(Event)) or 0,
            }
    finally:
        engine.dispose()


@pytest.mark.slow
def test_campaign_demo_twice_changes_nothing_and_fresh_rebuilds_the_same_shop(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shop-demo"
    first = _campaign("demo", "--users", "300", "--dir", str(folder), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Creating the demo" in first.stdout and "revenue" in first.stdout
    # The whole loop ran: model with its baseline, plans with message samples, report.
    assert "forward holdout ROC AUC" in first.stdout and "recency baseline" in first.stdout
    assert "winback email" in first.stdout and "campaign preview CAMPAIGN" in first.stdout
    assert "converted" in first.stdout and "95% CI" in first.stdout
    counts = _counts(folder / "campaign.db")
    assert counts["users"] == 300 and counts["products"] > 0 and counts["events"] > 10_000
    config_bytes = (folder / "config.toml").read_bytes()
    events_bytes = (folder / "data" / "events.csv").read_bytes()

    second = _campaign("demo", "--users", "300", "--dir", str(folder), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Reusing the demo" in second.stdout
    assert "0 new, 0 updated" in second.stdout
    assert _counts(folder / "campaign.db") == counts
    assert (folder / "config.toml").read_bytes() == config_bytes
    assert (folder / "data" / "events.csv").read_bytes() == events_bytes

    other_size = _campaign("demo", "--users", "200", "--dir", str(folder), cwd=tmp_path)
    assert other_size.returncode == 1
    assert other_size.stderr.startswith("error: ") and "--fresh" in other_size.stderr
    assert _counts(folder / "campaign.db") == counts

    # Inside the folder every command finds config.toml without flags.
    inside = _campaign("db", "upgrade", cwd=folder)
    assert inside.returncode == 0, inside.stderr
    assert "campaign.db: already at revision" in inside.stdout
    report = _campaign("report", "winback", cwd=folder)
    assert report.returncode == 0, report.stderr
    assert "winback" in report.stdout and "holdout" in report.stdout.lower()

    # Every command the demo's closing hint suggests works there, as printed.
    hints = suggested_commands(first.stdout)
    assert len(hints) >= 3 and any(h[:2] == ["campaign", "preview"] for h in hints), hints
    for hint in hints:
        done = _campaign(*hint[1:], cwd=folder)
        assert done.returncode == 0, (hint, done.stdout[-2000:], done.stderr)

    # The planted effect of each campaign lies inside its reported interval.
    effects = planted_effects(first.stdout)
    assert [name for name, *_ in effects] == ["care", "winback"], first.stdout
    for name, _, low, high, planted in effects:
        assert low <= planted <= high, (name, low, high, planted)

    fresh = _campaign("demo", "--fresh", "--users", "300", "--dir", str(folder), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "Creating the demo" in fresh.stdout
    assert _counts(folder / "campaign.db") == counts
    assert (folder / "data" / "events.csv").read_bytes() == events_bytes


@pytest.mark.slow
def test_the_demo_recovers_its_planted_uplifts_and_winback_excludes_zero(
    demo_shop: DemoShop,
) -> None:
    """At DEMO_USERS users the demo's claim holds: winback's 95% interval excludes zero.

    Measured at 1,000 users the interval excluded zero for 2 of 3 seeds, at 1,500 (seed
    7) it did not; at 2,000 it did for seeds 1, 2 and 7, and at the default 3,000.
    """
    effects = {name: rest for name, *rest in planted_effects(demo_shop.stdout)}
    assert set(effects) == {"winback", "care"}, demo_shop.stdout
    for name, (measured, low, high, planted) in effects.items():
        assert low <= measured <= high, (name, low, measured, high)
        assert low <= planted <= high, (name, low, planted, high)
    _, low, high, _ = effects["winback"]
    assert low > 0, (DEMO_USERS, DEMO_SEED, low, high)


@pytest.mark.slow
def test_the_uplift_ranked_audience_beats_the_risk_ranked_one_on_the_second_run(
    demo_shop: DemoShop,
) -> None:
    """The demo's second claim, measured from the simulated outcomes: the uplift model
    trained on the shop's past A/B test finds the planted persuadables, so its audience
    gains clearly more than the same number of the riskiest customers.

    Fails if the planting breaks (no persuadables: both gain about nothing) or the
    targeting does (ranked by risk, both audiences are the same customers). At
    DEMO_USERS, seed 2: +25.1 pts against +9.4.
    """
    assert "Second run: targeting by uplift" in demo_shop.stdout
    assert "uplift model" in demo_shop.stdout and "past A/B test" in demo_shop.stdout
    measured = targeting_comparison(demo_shop.stdout)
    assert set(measured) == {"uplift-ranked", "risk-ranked"}, demo_shop.stdout
    size, uplift = measured["uplift-ranked"]
    _, risk = measured["risk-ranked"]
    assert size >= 200
    assert uplift >= 10 and uplift >= risk + 5, (uplift, risk)
    # The randomized audience is the planner's own (messages outside the learning share).
    engine = create_engine(f"sqlite:///{demo_shop.folder / 'campaign.db'}")
    try:
        with engine.connect() as connection:
            audience = connection.scalar(
                select(func.count()).select_from(Message)
                .where(Message.campaign == "retain", Message.learning.is_(False),
                       Message.status.in_(("sent", "held_out"))))
    finally:
        engine.dispose()
    assert audience == size


@pytest.mark.slow
def test_a_small_demo_skips_the_uplift_run_in_one_line(tmp_path: Path) -> None:
    done = _campaign("demo", "--users", "200", "--dir", str(tmp_path / "small"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    # 200 users are too few for the churn model the run targets with (and the past
    # test's ~170 treated too few for the uplift model): one line says so.
    assert "skipped the uplift-targeted second run: no churn model" in text, done.stdout
    assert "no second run to measure" in text
    assert targeting_comparison(done.stdout) == {}
