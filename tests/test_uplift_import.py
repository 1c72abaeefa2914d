"""``campaign import experiments``: validated like every import, idempotent, all or nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from campaign.db.models import ExperimentAssignment

runner = CliRunner()

HEADER = "user_id,campaign,group,assigned_at,converted,revenue,visited,variant\n"


def _setup(tmp_path: Path, db_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[shop]\ncurrency = "EUR"\n')
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\nu2\nu3\n")
    loaded = runner.invoke(app, ["--config", str(config), "import", "users", str(users)])
    assert loaded.exit_code == 0, loaded.output
    return config


def _rows(db_url: str) -> list[tuple[object, ...]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            e = ExperimentAssignment
            return [tuple(r) for r in connection.execute(
                select(e.campaign, e.group, e.converted, e.revenue_cents, e.visited, e.variant)
                .order_by(e.user_id))]
    finally:
        engine.dispose()


def test_an_experiment_file_imports_once_and_a_reimport_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    config = _setup(tmp_path, db_url)
    file = tmp_path / "experiments.csv"
    file.write_text(
        HEADER
        + "u1,spring,treatment,2024-03-01T10:00:00Z,true,12.50,yes,mens\n"
        + "u2,spring,control,2024-03-01T10:00:00Z,0,,,\n"
        + "u3,spring,TREATMENT,2024-03-01,no,,1,\n"
    )
    first = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file)])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == (
        "experiments.csv: 3 rows, 3 inserted, 0 updated, 0 unchanged, 0 rejected")
    assert _rows(db_url) == [
        ("spring", "treatment", True, 1250, True, "mens"),
        ("spring", "control", False, None, None, None),
        ("spring", "treatment", False, None, True, None),
    ]
    again = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file)])
    assert again.stdout.strip().endswith("0 inserted, 0 updated, 3 unchanged, 0 rejected")
    file.write_text(HEADER + "u2,spring,control,2024-03-01T10:00:00Z,1,3,,\n")
    changed = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file)])
    assert changed.stdout.strip().endswith("0 inserted, 1 updated, 0 unchanged, 0 rejected")
    assert _rows(db_url)[1] == ("spring", "control", True, 300, None, None)


def test_bad_rows_are_named_by_line_and_column_and_nothing_is_imported(
    db_url: str, tmp_path: Path
) -> None:
    config = _setup(tmp_path, db_url)
    file = tmp_path / "experiments.csv"
    file.write_text(
        HEADER
        + "u1,spring,treatment,2024-03-01,true,,,\n"
        + "u9,spring,treatment,2024-03-01,true,,,\n"
        + "u2,spring,maybe,2024-03-01,true,,,\n"
        + "u3,spring,control,yesterday,true,,,\n"
        + "u3,spring,control,2024-03-01,,,,\n"
        + "u1,spring,control,2024-03-01,false,,,\n"
        + "u2,spring,control,2024-03-02,false,12.345,,\n"
    )
    result = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: experiments.csv: 6 invalid row(s), nothing imported",
        "experiments.csv:3: user_id: unknown user 'u9' (import users first)",
        "experiments.csv:4: group: not 'treatment' or 'control': 'maybe'",
        "experiments.csv:5: assigned_at: not an ISO 8601 timestamp: 'yesterday'",
        "experiments.csv:6: converted: required",
        "experiments.csv:7: user_id: duplicate (campaign, user_id, assigned_at) "
        "(first on line 2)",
        "experiments.csv:8: revenue: " + result.stderr.strip().splitlines()[-1].split(
            "revenue: ", 1)[1],
    ]
    assert _rows(db_url) == []
    skipped = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file),
                                  "--skip-invalid"])
    assert skipped.exit_code == 0, skipped.output
    assert "1 inserted" in skipped.stdout and "6 rejected" in skipped.stdout
    assert (tmp_path / "experiments.csv.rejected.csv").read_text().count("\n") == 7
    assert len(_rows(db_url)) == 1


def test_a_missing_required_column_refuses_the_file(db_url: str, tmp_path: Path) -> None:
    config = _setup(tmp_path, db_url)
    file = tmp_path / "experiments.csv"
    file.write_text("user_id,campaign,group,assigned_at\nu1,spring,treatment,2024-03-01\n")
    result = runner.invoke(app, ["--config", str(config), "import", "experiments", str(file)])
    assert result.exit_code == 1
    assert "converted" in result.stderr
    assert _rows(db_url) == []
