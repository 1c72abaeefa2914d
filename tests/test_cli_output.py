"""Tables that never cut a number, and ``--format json|csv`` with documented fields."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campaign.churn.registry import save_model_version
from campaign.cli import app, campaigns, model, recommend, report, uplift
from campaign.db.engine import session_scope
from campaign.measurement.reports.status import FIELDS as STATUS_FIELDS
from tests.test_attribution import NOW, build_scenario
from tests.test_churn_db import load_shop, purchases  # noqa: F401  (a fixture)
from tests.test_churn_model import T as HISTORY_END
from tests.test_planner_cli import shop as planner_shop  # noqa: F401  (a fixture)
from tests.test_recommend_db import _config as recommend_config
from tests.test_recommend_db import shop as recommend_shop  # noqa: F401  (a fixture)
from tests.test_reports import _fitted_pipeline

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def documented(command: str) -> dict[str, tuple[str, ...]]:
    """Section → field names of ``campaign <command>`` in docs/output.md."""
    text = (ROOT / "docs" / "output.md").read_text(encoding="utf-8")
    part = text.split(f"## `campaign {command}`\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[str, ...]] = {}
    for line in part.splitlines():
        match = re.match(r"\| `(\w+)` \| (.+) \|$", line)
        if not match:
            continue
        fields = match.group(2)
        while re.search(r"\([^()]*\)", fields):  # drop the explanations in parentheses
            fields = re.sub(r"\([^()]*\)", "", fields)
        found[match.group(1)] = tuple(re.findall(r"`(\w+)`", fields))
    return found


def test_the_docs_list_every_field_of_every_machine_output() -> None:
    assert documented("status") == {"status": ("now",), **STATUS_FIELDS}
    assert documented("report") == {
        "report": ("now", "window_days", "horizon_days", "currency"),
        "funnel": report.FUNNEL_FIELDS, "uplift": tuple(report.UPLIFT_FIELDS.values()),
        "arms": report.ARM_FIELDS, "targeting_gain": report.TARGETING_GAIN_FIELDS,
        "targeting_deciles": report.TARGETING_DECILE_FIELDS, "notes": ("note",),
    }
    models = (ROOT / "docs" / "output.md").read_text().split("one section, `models`: ")[1]
    assert tuple(re.findall(r"`(\w+)`", re.sub(r"\([^()]*\)", "", models.split(".")[0]))
                 ) == report.MODEL_FIELDS
    assert documented("evaluate churn") == {
        "evaluation": model.EVALUATION_FIELDS, "metrics": model.METRIC_FIELDS,
    }
    assert documented("evaluate recommend") == {
        "evaluation": recommend.EVALUATION_FIELDS, "metrics": recommend.METRIC_FIELDS,
        "tournament": recommend.TOURNAMENT_FIELDS,
    }
    assert documented("evaluate uplift") == {
        "evaluation": uplift.EVALUATION_FIELDS, "metrics": uplift.METRIC_FIELDS,
        "targeting_gain": uplift.GAIN_FIELDS, "targeting_deciles": uplift.DECILE_FIELDS,
    }
    assert documented("preview") == {
        "preview": ("campaign", "slot", "as_of", "outcome", "ranked_by", "targeting", "notes"),
        "decisions": campaigns.DECISION_FIELDS,
        "counts": ("outcome", "users"),
        "messages": campaigns.MESSAGE_FIELDS,
    }


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def reported(session_factory: sessionmaker[Session], engine: Engine, db_url: str,
             tmp_path: Path) -> Path:
    """A database with one campaign's outcomes and a model trained on 366,226 rows."""
    with session_scope(session_factory) as session:
        build_scenario(session)
    with engine.begin() as connection:
        for as_of, rows in ((datetime(2026, 6, 1, tzinfo=UTC), 366_226),
                            (datetime(2026, 9, 1, tzinfo=UTC), 1_234_567)):
            save_model_version(
                connection, pipeline=_fitted_pipeline(), trained_at=NOW, as_of=as_of,
                horizon_days=90,
                params={"max_depth": 3, "inputs": ["a"] * 15, "training_rows": rows},
                metrics={"holdout": {"roc_auc": 0.8870291, "pr_auc": 0.8874836,
                                     "brier": 0.1356232, "lift_top_decile": 2.2404058,
                                     "churn_rate": 0.4447421},
                         "holdout_recency": {"roc_auc": 0.8391569}},
                key=b"test key",
            )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[channels.email]\nkind = "file"\npath = "out"\n'
        '[[campaigns]]\nname = "winback"\n[[campaigns.variants]]\nname = "coupon"\n'
        'template = "winback"\n', encoding="utf-8")
    return config


def _as_piped(config: Path, *args: str) -> str:
    """The command's stdout as a pipe gets it (not a terminal: 80 columns)."""
    result = runner.invoke(app, ["--config", str(config), *args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tables_never_cut_a_number_at_80_columns_or_in_a_pipe(reported: Path) -> None:
    history = _as_piped(reported, "report", "--model")
    assert "…" not in history
    for figure in ("366,226", "1,234,567", "0.887", "0.839", "0.887", "0.136", "2.240",
                   "44.5%", "2026-06-01", "2026-09-01"):
        assert figure in history, figure
    campaign = _as_piped(reported, "report", "--as-of", NOW.date().isoformat())
    assert "…" not in campaign and "Revenue" in campaign and "p" in campaign
    status = _as_piped(reported, "status")
    assert "…" not in status and "winback" in status


def test_report_json_and_csv_carry_raw_numbers_in_documented_fields(reported: Path) -> None:
    data = json.loads(_as_piped(reported, "report", "--as-of", NOW.date().isoformat(),
                                "--format", "json"))
    assert {k: tuple(v[0]) for k, v in data.items() if v} == {
        k: v for k, v in documented("report").items() if data[k]
    }
    funnel = {r["variant"]: r for r in data["funnel"]}
    assert funnel["(all)"]["planned"] == 5 and funnel["(all)"]["held_out"] == 2
    uplift = {r["variant"]: r for r in data["uplift"]}["(all)"]
    assert uplift["conv_treatment"] == pytest.approx(0.8)
    assert isinstance(uplift["coupon_cost_cents"], int)
    rows = _csv(_as_piped(reported, "report", "--as-of", NOW.date().isoformat(),
                          "--format", "csv"))
    assert list(rows[0])[:5] == ["section", "now", "window_days", "horizon_days", "currency"]
    assert {r["section"] for r in rows} >= {"report", "funnel", "uplift"}
    models = json.loads(_as_piped(reported, "report", "--model", "--format", "json"))
    assert [m["training_rows"] for m in models["models"]] == [366_226, 1_234_567]
    assert tuple(models["models"][0]) == report.MODEL_FIELDS
    assert all("holdout" in m["split"] for m in models["models"])  # named beside each figure


def test_evaluate_churn_json_and_csv(sqlite_url: str, purchases: pd.DataFrame,  # noqa: F811
                                     tmp_path: Path) -> None:
    from campaign.db.engine import make_engine

    engine = make_engine(sqlite_url)
    load_shop(engine, purchases)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[model]\nmin_customers = 50\n'
        "min_history_days = 100\nsnapshots = 2\nmax_depth_candidates = [3]\n"
        "min_samples_leaf_candidates = [20]\n"
        # The history ends at HISTORY_END; without a pinned clock T would be today.
        f'[clock]\nas_of = "{HISTORY_END:%Y-%m-%dT%H:%M:%S}Z"\n'
    )
    data = json.loads(_as_piped(config, "evaluate", "churn", "--format", "json"))
    assert tuple(data["evaluation"][0]) == model.EVALUATION_FIELDS
    # The split is named beside the figures, in the words the table uses.
    assert "holdout" in data["evaluation"][0]["split"]
    figures = {(m["model"], m["metric"]): m["value"] for m in data["metrics"]}
    assert 0.5 < figures["tree", "roc_auc"] <= 1 and isinstance(figures["tree", "customers"],
                                                               int)
    rows = _csv(_as_piped(config, "evaluate", "churn", "--format", "csv"))
    assert list(rows[0]) == ["section", *model.EVALUATION_FIELDS, *model.METRIC_FIELDS]
    assert sum(r["section"] == "metrics" for r in rows) == len(data["metrics"])
    table = _as_piped(config, "evaluate", "churn")
    assert "…" not in table and "lift in top 10%" in table


def test_evaluate_recommend_json(engine: Engine, recommend_shop: dict[str, int],  # noqa: F811
                                 db_url: str, tmp_path: Path) -> None:
    config = recommend_config(tmp_path, db_url)
    data = json.loads(_as_piped(config, "evaluate", "recommend", "-k", "3", "--format", "json"))
    assert data["evaluation"][0]["k"] == 3
    assert {m["model"] for m in data["metrics"]} >= {"popularity", "hybrid"}
    assert all(tuple(m) == recommend.METRIC_FIELDS for m in data["metrics"])


def test_preview_json_has_decisions_and_messages_without_addresses(
    planner_shop: Path,  # noqa: F811
) -> None:
    config = planner_shop / "config.toml"
    text = _as_piped(config, "preview", "c", "--as-of", "2026-11-01", "--format", "json")
    data = json.loads(text)
    assert tuple(data["decisions"][0]) == campaigns.DECISION_FIELDS
    assert {d["user_id"] for d in data["decisions"]} >= {"c0", "nomail"}
    assert data["messages"] and tuple(data["messages"][0]) == campaigns.MESSAGE_FIELDS
    assert data["preview"][0]["outcome"] == "dry_run"
    assert "@example.com" not in text and "+86" not in text
    rows = _csv(_as_piped(config, "preview", "c", "--as-of", "2026-11-01", "--format", "csv"))
    assert {r["section"] for r in rows} == {"preview", "decisions", "counts", "messages"}


def test_counts_read_alike_everywhere(sqlite_url: str, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + "".join(f"u{i}\n" for i in range(1_234)))
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    out = _as_piped(config, "import", "users", str(users))
    assert "1,234 rows, 1,234 inserted" in out
    status = json.loads(_as_piped(config, "status", "--format", "json"))
    assert status["outbox"] == []  # raw numbers stay raw in machine output


def test_csv_output_neutralises_formulas_and_keeps_numbers_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from decimal import Decimal

    from campaign.cli.output import OutputFormat, Section, emit

    emit(
        {
            "users": Section(
                ("user_id", "amount", "delta", "tags"),
                [{"user_id": "=HYPERLINK(\"http://x\")", "amount": Decimal("-12.50"),
                  "delta": -0.5, "tags": ["a"]},
                 {"user_id": "+1 555", "amount": None, "delta": 2, "other": "leak"}],
            ),
            "totals": Section(("n",), [{"n": 2, "user_id": "not mine"}]),
        },
        OutputFormat.csv,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "section,user_id,amount,delta,tags,n",
        "users,\"'=HYPERLINK(\"\"http://x\"\")\",-12.50,-0.5,\"[\"\"a\"\"]\",",
        "users,'+1 555,,2,,",
        "totals,,,,,2",
    ]
