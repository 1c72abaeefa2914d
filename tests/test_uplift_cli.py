"""``campaign train|score|evaluate uplift`` through the real CLI on an imported experiment."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from campaign.cli import app

runner = CliRunner()
T = datetime(2026, 6, 1, tzinfo=UTC)


def _shop(tmp_path: Path, db_url: str, n: int, *, min_rows: int = 200) -> Path:
    """A 50/50 test: persuadables 4–9 months after their last order, sleeping dogs among
    big spenders, no effect elsewhere; one past order per customer."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[shop]\ncurrency = "EUR"\n'
        f"[uplift]\nmin_treated = {min_rows}\nmin_control = {min_rows}\n"
        "delta = 0.05\nbase_rate = 0.2\nmin_samples_leaf = 100\n"
    )
    rng = np.random.default_rng(11)
    days = rng.uniform(10, 600, n)
    spend = rng.uniform(10, 400, n)
    treated = rng.random(n) < 0.5
    persuadable = (days > 120) & (days <= 270)
    dog = (spend > 300) & ~persuadable
    rate = np.where(treated, np.where(dog, 0.05, np.where(persuadable, 0.35, 0.1)),
                    np.where(dog, 0.35, np.where(persuadable, 0.05, 0.1)))
    converted = rng.random(n) < rate
    (tmp_path / "users.csv").write_text(
        "user_id\n" + "".join(f"c{i}\n" for i in range(n)))
    with (tmp_path / "events.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "type", "ts", "amount"])
        for i in range(n):
            writer.writerow([f"c{i}", "purchase", (T - timedelta(days=float(days[i])))
                             .isoformat(), f"{spend[i]:.2f}"])
    with (tmp_path / "experiments.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "campaign", "group", "assigned_at", "converted",
                         "revenue"])
        for i in range(n):
            writer.writerow([f"c{i}", "spring", "treatment" if treated[i] else "control",
                             T.isoformat(), "1" if converted[i] else "0",
                             "40.00" if converted[i] else ""])
    for kind in ("users", "events", "experiments"):
        result = runner.invoke(app, ["--config", str(config), "import", kind,
                                     str(tmp_path / f"{kind}.csv")])
        assert result.exit_code == 0, result.output
    return config


def test_train_score_and_evaluate_uplift_on_an_imported_experiment(
    db_url: str, tmp_path: Path
) -> None:
    config = _shop(tmp_path, db_url, 6_000)
    trained = runner.invoke(app, ["--config", str(config), "train", "uplift",
                                  "--campaign", "spring"])
    assert trained.exit_code == 0, trained.output
    assert "uplift version" in trained.stdout and "for campaign spring" in trained.stdout
    table = [line.replace("┃", "│") for line in trained.stdout.splitlines()]
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in table if line.count("│") > 3}
    header = lines["metric"]
    qini = dict(zip(header, lines["Qini coefficient"], strict=True))
    assert set(header) == {"tree", "boosting", "risk (recency)", "random"}
    assert float(qini["tree"]) > 0.15 and float(qini["random"]) == 0.0
    assert float(qini["tree"]) > float(qini["risk (recency)"]) + 0.1

    output = tmp_path / "uplift.csv"
    scored = runner.invoke(app, ["--config", str(config), "score", "uplift",
                                 "--output", str(output), "--as-of", "2026-06-01"])
    assert scored.exit_code == 0, scored.output
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["user_id", "uplift", "segment", "reason"]
    assert len(rows) == 6_000
    assert {r["segment"] for r in rows} <= {"persuadable", "sleeping dog", "sure thing",
                                            "lost cause"}
    top = rows[0]
    assert top["segment"] == "persuadable" and float(top["uplift"]) > 0.05
    assert top["reason"].startswith("the message helps: ") and "pts)" in top["reason"]
    assert any(r["segment"] == "sleeping dog" for r in rows)

    evaluated = runner.invoke(app, ["--config", str(config), "evaluate", "uplift"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "uplift at 30 %" in evaluated.stdout and "risk (recency)" in evaluated.stdout
    # For machines: the same comparison, the metrics raw (fractions, not points).
    as_json = runner.invoke(app, ["--config", str(config), "evaluate", "uplift",
                                  "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.stdout)
    [evaluation] = found["evaluation"]
    assert evaluation["campaign"] == "spring" and evaluation["outcome"] == "converted"
    assert evaluation["train_rows"] + evaluation["validation_rows"] == 6_000
    assert evaluation["chosen"] in {"tree", "boosting"}
    metric = {(r["model"], r["metric"]): r["value"] for r in found["metrics"]}
    assert metric[("tree", "qini")] > metric[("risk (recency)", "qini")] + 0.1
    assert metric[("random", "qini")] == 0.0 and metric[("tree", "customers")] == (
        evaluation["validation_rows"])
    assert 0 < metric[("tree", "uplift_at_30")] < 1
    assert {r["share"] for r in found["targeting_gain"]} == {0.1, 0.3, 0.5}
    assert [d["decile"] for d in found["targeting_deciles"]] == list(range(1, 11))
    as_csv = runner.invoke(app, ["--config", str(config), "evaluate", "uplift",
                                 "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    csv_rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert {r["section"] for r in csv_rows} == {"evaluation", "metrics", "targeting_gain",
                                                "targeting_deciles"}
    assert sum(r["section"] == "metrics" for r in csv_rows) == len(found["metrics"])

    # The report: messaging the top 30 % by uplift instead of by risk, on held-back rows.
    reported = runner.invoke(app, ["--config", str(config), "report", "--format", "json"])
    assert reported.exit_code == 0, reported.output
    sections = json.loads(reported.stdout)
    gain = {(r["share"], r["outcome"]): r for r in sections["targeting_gain"]}
    assert {share for share, _ in gain} == {0.1, 0.3, 0.5}
    assert {outcome for _, outcome in gain} == {"converted", "revenue"}
    top30 = gain[(0.3, "converted")]
    # Persuadables +30 points, sleeping dogs -30 points: the uplift ranking finds the
    # first, risk (longest since the last order) mixes all three.
    assert top30["low"] > 0 and top30["gain"] > 50
    assert top30["gain"] == pytest.approx(top30["by_uplift"] - top30["by_risk"])
    assert gain[(0.3, "revenue")]["gain"] == pytest.approx(top30["gain"] * 40, rel=1e-6)
    deciles = sections["targeting_deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert deciles[0]["uplift"] > 0.1 > deciles[-1]["uplift"]
    assert all(d["low"] <= d["uplift"] <= d["high"] for d in deciles)
    text = runner.invoke(app, ["--config", str(config), "report"])
    assert "by uplift vs by risk, per 1,000 messages" in text.stdout
    page = tmp_path / "report.html"
    html = runner.invoke(app, ["--config", str(config), "report", "--html", str(page)])
    assert html.exit_code == 0, html.output
    body = page.read_text(encoding="utf-8")
    assert "Whom to message: uplift vs risk" in body and "Qini curve" not in body[:200]
    assert "per 1,000 messages" in body


def test_training_refuses_below_the_minimum_and_says_how_many_it_has(
    db_url: str, tmp_path: Path
) -> None:
    config = _shop(tmp_path, db_url, 300, min_rows=200)
    result = runner.invoke(app, ["--config", str(config), "train", "uplift"])
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith("error: campaign 'spring': ")
    assert "at least 200 treated and 200 held out ([uplift] min_treated, min_control)" in message
    assert "uplift version" not in result.stdout
    scored = runner.invoke(app, ["--config", str(config), "score", "uplift"])
    assert scored.exit_code == 1
    assert "uplift model" in scored.stderr and "campaign train uplift" in scored.stderr


def test_a_revenue_model_scores_money_in_the_shops_currency(db_url: str, tmp_path: Path) -> None:
    config = _shop(tmp_path, db_url, 4_000)
    trained = runner.invoke(app, ["--config", str(config), "train", "uplift",
                                  "--outcome", "revenue"])
    assert trained.exit_code == 0, trained.output
    output = tmp_path / "revenue.csv"
    scored = runner.invoke(app, ["--config", str(config), "score", "uplift", "--campaign",
                                 "spring", "--output", str(output), "--as-of", "2026-06-01"])
    assert scored.exit_code == 0, scored.output
    rows = list(csv.DictReader(output.open()))
    top = rows[0]
    # Every conversion is worth 40.00 EUR: a 30-point uplift is about 12 EUR a customer.
    assert 5.0 < float(top["uplift"]) < 20.0 and len(top["uplift"].split(".")[1]) <= 2
    assert top["reason"].endswith(" EUR)") and top["segment"] == "persuadable"
    wrong = runner.invoke(app, ["--config", str(config), "train", "uplift",
                                "--outcome", "clicks"])
    assert wrong.exit_code == 2 and "converted, visited, revenue" in wrong.output
