"""Report frames, the terminal report, the HTML page and the model history."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from campaign.churn.model import build_pipeline
from campaign.churn.registry import activate, save_model_version
from campaign.cli import app
from campaign.config import CampaignConfig, ChannelConfig, Config, VariantConfig
from campaign.db.engine import session_scope
from campaign.db.models import ExperimentArm, Response
from campaign.measurement.attribution import message_outcomes
from campaign.measurement.reports.data import (
    ALL,
    campaign_report,
    funnel_frame,
    model_history,
    uplift_frame,
    with_reached,
)
from campaign.measurement.reports.html import render_html
from tests.test_attribution import NOW, PLANNED, build_scenario


def _config() -> Config:
    return Config(
        channels={"email": ChannelConfig(kind="file", path="outbox")},
        campaigns=(CampaignConfig(name="winback", variants=(
            VariantConfig(name="coupon", template="winback"),
            VariantConfig(name="plain", template="care", offer=False),
            VariantConfig(name="old", template="care", enabled=False),
        )),),
    )


def _synthetic(n_t: int, n_c: int, p_t: float, p_c: float, seed: int = 0) -> pd.DataFrame:
    """An outcomes frame of one campaign with planted conversion rates."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_t + n_c):
        treated = i < n_t
        converted = rng.random() < (p_t if treated else p_c)
        rows.append({
            "message_id": i, "campaign": "c", "user_id": i,
            "variant": ("a" if i % 2 else "b") if treated else None,
            "status": "sent" if treated else "held_out", "skip_reason": None,
            "engagement": None, "coupon_code": None, "created_at": PLANNED,
            "sent_at": PLANNED if treated else None, "run_id": 1, "channel": "email",
        })
        rows[-1]["_buy"] = converted
    messages = pd.DataFrame(rows)
    buyers = messages[messages["_buy"]]
    purchases = pd.DataFrame({"user_id": buyers["user_id"],
                              "ts": PLANNED + timedelta(days=2),
                              "amount_cents": 10_000, "coupon_code": None})
    out = message_outcomes(messages.drop(columns="_buy"), purchases, pd.DataFrame(),
                           window_days=14, horizon_days=90, now=NOW)
    return with_reached(out, pd.DataFrame(columns=["message_id", "type"]))


def test_the_uplift_frame_recovers_a_planted_effect_within_its_interval():
    outcomes = _synthetic(4000, 4000, 0.15, 0.10)
    row = uplift_frame(outcomes).set_index("variant").loc[ALL]
    assert row["uplift_low"] <= 0.05 <= row["uplift_high"]
    assert row["uplift_low"] > 0
    assert row["p_value"] < 0.001
    assert row["relative_uplift"] == pytest.approx(row["uplift"] / row["conv_control"])
    # Every buyer paid 100.00 once, so revenue per user is 10,000 cents x the rate.
    assert row["revenue_uplift_per_user"] == pytest.approx(row["uplift"] * 10_000)
    assert row["incremental_revenue_cents"] == pytest.approx(
        row["revenue_uplift_per_user"] * 4000
    )


def test_no_effect_gives_an_interval_around_zero():
    row = uplift_frame(_synthetic(3000, 3000, 0.1, 0.1, seed=3)).set_index("variant").loc[ALL]
    assert row["uplift_low"] < 0 < row["uplift_high"]


def test_variants_are_compared_with_the_whole_holdout():
    frame = uplift_frame(_synthetic(1000, 500, 0.2, 0.1)).set_index("variant")
    assert set(frame.index) == {ALL, "a", "b"}
    assert frame.loc["a", "n_control"] == frame.loc[ALL, "n_control"] == 500
    assert frame.loc["a", "n_treatment"] + frame.loc["b", "n_treatment"] == 1000


def test_the_report_on_the_database_counts_the_funnel_groups_and_coupon_cost(
    session_factory, engine
):
    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
        session.add(Response(message_id=scenario.messages["buyer"], type="opened", ts=PLANNED,
                             provider="webhook", provider_event_id="e1", payload={}))
        session.add(Response(message_id=scenario.messages["coupon"], type="clicked",
                             ts=PLANNED, provider="webhook", provider_event_id="e2", payload={}))
        session.add(ExperimentArm(campaign="winback", variant="coupon", successes=2, failures=1))
    from campaign.measurement.attribution import attribute

    attribute(engine, _config().attribution, horizon_days=90, now=NOW)
    with engine.connect() as connection:
        report = campaign_report(connection, _config(), now=NOW)
    funnel = report.funnel.set_index("variant").loc[ALL]
    # 5 assigned to treatment (no_consent is ineligible), 2 held out, 4 sent.
    assert (funnel["planned"], funnel["held_out"], funnel["sent"]) == (5, 2, 4)
    assert funnel["opened"] == 2  # an opened response, and a click implies an open
    assert funnel["clicked"] == 1 and funnel["redeemed"] == 1
    assert funnel["converted"] == 4  # buyer, coupon, skipped_buyer, clicked
    uplift = report.uplift.set_index("variant").loc[ALL]
    assert uplift["conv_treatment"] == pytest.approx(4 / 5)
    assert uplift["conv_control"] == pytest.approx(1 / 2)
    assert uplift["coupon_cost_cents"] == 2000
    # Every treated user bought within 90 days; one of the two held-out users did not.
    assert uplift["churn_treatment"] == 0 and uplift["churn_control"] == pytest.approx(1 / 2)
    arms = report.arms.set_index("variant")
    assert arms.loc["coupon", "successes"] == 2 and arms.loc["old", "enabled"] == False  # noqa
    assert math.isnan(arms.loc["old", "next_share"])
    assert arms.loc["coupon", "next_share"] + arms.loc["plain", "next_share"] == pytest.approx(1)


def _fitted_pipeline():
    rng = np.random.default_rng(0)
    n = 400
    recency = rng.integers(1, 300, n).astype(float)
    orders = rng.integers(1, 12, n)
    summary = pd.DataFrame({
        "days_since_last_purchase": recency,
        "days_since_first_purchase": recency + rng.integers(0, 300, n),
        "orders_total": orders, "orders_30d": 0, "orders_90d": (recency < 90).astype(int),
        "orders_365d": orders, "spend_365d_cents": orders * 5000,
    })
    labels = pd.Series((recency > 120).astype(int))
    return build_pipeline(90, 3, 20, 0).fit(summary, labels)


def test_the_html_report_is_self_contained_with_every_plot(session_factory, engine, tmp_path):
    with session_scope(session_factory) as session:
        build_scenario(session)
    with engine.begin() as connection:
        version = save_model_version(connection, pipeline=_fitted_pipeline(), trained_at=NOW,
                                     as_of=PLANNED, horizon_days=90, params={"max_depth": 3},
                                     metrics={"holdout": {"roc_auc": 0.8}}, key=b"test key")
        activate(connection, version)
    with engine.connect() as connection:
        report = campaign_report(connection, _config(), now=NOW)
        history = model_history(connection)
    scores = pd.DataFrame({"risk": np.linspace(0, 1, 50)})
    page = render_html(_config(), report, scores=scores, pipeline=_fitted_pipeline(),
                       history=history)
    assert page.count("data:image/png;base64,") == 4  # posteriors, risk, importances, tree
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') >= 3  # uplift, funnel,
    # model history: inline, nothing fetched (the SVG namespace is a name, not a fetch)
    without_namespace = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_namespace and "https://" not in without_namespace
    assert "Did it work?" in page and "winback" in page


def test_report_command_prints_tables_and_writes_html(session_factory, engine, db_url, tmp_path):
    with session_scope(session_factory) as session:
        build_scenario(session)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[channels.email]\nkind = "file"\npath = "out"\n'
        '[[campaigns]]\nname = "winback"\n[[campaigns.variants]]\nname = "coupon"\n'
        'template = "winback"\n', encoding="utf-8")
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["--config", str(config), "report", "winback", "--as-of",
                                      NOW.date().isoformat(), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "uplift" in result.output.lower() and "winback" in result.output
    assert html.is_file() and html.read_text(encoding="utf-8").startswith("<!doctype html>")
    model = CliRunner().invoke(app, ["--config", str(config), "report", "--model"])
    assert model.exit_code == 0 and "No churn model" in model.output
    unknown = CliRunner().invoke(app, ["--config", str(config), "report", "nope"])
    assert unknown.exit_code == 1 and "nope" in unknown.output


def test_model_history_lists_versions_oldest_first(engine):
    pipeline = _fitted_pipeline()
    with engine.begin() as connection:
        for days, auc in ((0, 0.7), (90, 0.8)):
            save_model_version(connection, pipeline=pipeline, trained_at=NOW,
                               as_of=PLANNED + timedelta(days=days), horizon_days=90,
                               params={"max_depth": 3, "inputs": ["a", "b"]},
                               metrics={"holdout": {"roc_auc": auc}}, key=b"test key")
    with engine.connect() as connection:
        history = model_history(connection)
    assert list(history["roc_auc"]) == [0.7, 0.8]
    assert history["as_of"].is_monotonic_increasing
    assert math.isnan(history.loc[0, "brier"]) and history.loc[0, "inputs"] == 2


def test_funnel_frame_has_a_row_per_variant_and_one_for_all():
    frame = funnel_frame(_synthetic(10, 5, 0.5, 0.5))
    assert list(frame["variant"]) == [ALL, "a", "b"]
    assert frame.loc[0, "held_out"] == 5 and frame.loc[0, "planned"] == 10



# -- the demo's simulation and its trip through the real webhook server -----------------


def _sent_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "message_id": range(1, n + 1), "external_id": [f"u{i}" for i in range(n)],
        "campaign": "winback", "status": "sent", "medium": "email",
        "coupon_code": [f"CB{i:08d}" for i in range(n)], "percent_off": 20,
        "coupon_expires_at": PLANNED + timedelta(days=14), "sent_at": PLANNED,
        "product": "p1",
    })


def test_the_simulation_is_seeded_and_plants_the_offer_dependent_lift():
    from campaign.demo.customers import PlantedEffect, simulate_responses

    future = pd.DataFrame(columns=["event_id", "user_id", "type", "ts", "product_id",
                                   "order_id", "quantity", "amount", "coupon_code"])
    prices = pd.Series({"p1": 10_000})
    first = simulate_responses(_sent_frame(4000), future, prices, seed=5)
    again = simulate_responses(_sent_frame(4000), future, prices, seed=5)
    assert first.webhooks == again.webhooks
    assert first.events.equals(again.events)
    expected = PlantedEffect().lift(np.array([20]))[0]
    assert expected == pytest.approx(0.12)
    share = first.extra["extra_purchase"].mean()
    assert share == pytest.approx(expected * 0.97, abs=0.015)  # bounced mail buys nothing
    # Extra purchases pay the discounted price with the message's own code.
    assert set(first.events["amount"]) == {"80.00"}
    assert first.events["coupon_code"].str.startswith("CB").all()


def test_simulated_webhooks_go_through_the_real_server_into_the_database(
    session_factory, engine
):
    from sqlalchemy import select

    from campaign.db.models import Message
    from campaign.demo.webhooks import post_webhooks, running_server, with_demo_secret

    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
    message_id = scenario.messages["late"]
    body = (b'{"type": "opened", "message_id": %d, "timestamp": "2026-11-02T00:00:00Z"}'
            % message_id)
    with running_server(with_demo_secret(_config()), engine, clock_at=NOW) as url:
        statuses = post_webhooks(url, [("demo-1", body), ("demo-1", body)], at=NOW)
        bad = post_webhooks(url, [("demo-2", body)], at=NOW - timedelta(hours=1))
    assert statuses == {200: 2} and bad == {401: 1}
    with engine.connect() as connection:
        stored = connection.execute(select(Response.provider_event_id)).scalars().all()
        engagement = connection.execute(
            select(Message.engagement).where(Message.id == message_id)).scalar()
    assert stored == ["demo-1"] and engagement == "opened"


def test_the_reports_verdict_waits_for_the_always_valid_interval() -> None:
    from campaign.experiments.uplift import proportion_uplift
    from campaign.measurement.reports.html import _uplift_sentences

    # 4.0 % vs 2.5 %: the fixed-horizon interval already excludes zero, the
    # always-valid one (safe to read every day) does not yet.
    result = proportion_uplift(160, 4000, 25, 1000)
    assert result.low > 0
    assert result.always_low < 0 and not result.significant
    row = {
        "campaign": "winback", "variant": "(all)", "uplift": result.diff,
        "uplift_low": result.low, "uplift_high": result.high,
        "uplift_always_low": result.always_low, "uplift_always_high": result.always_high,
        "conv_treatment": result.p_treatment, "conv_control": result.p_control,
        "p_value": result.p_value, "incremental_revenue_cents": 0.0, "coupon_cost_cents": 0,
    }
    text = _uplift_sentences(pd.DataFrame([row]), "CNY")
    assert "class='flat'" in text and "always-valid" in text
    clear = proportion_uplift(400, 4000, 25, 1000)
    assert clear.significant
    row.update(uplift=clear.diff, uplift_low=clear.low, uplift_high=clear.high,
               uplift_always_low=clear.always_low, uplift_always_high=clear.always_high)
    assert "class='good'" in _uplift_sentences(pd.DataFrame([row]), "CNY")
