"""``campaign import ...`` through the real CLI: one-line summaries, one-line errors."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from campaign.db.models import Event, User

runner = CliRunner()


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path


def _count(db_url: str, column: object) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count(column))).scalar_one())
    finally:
        engine.dispose()


def test_import_prints_a_one_line_summary(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id,email\nu1,a@example.com\nu2,b@example.com\n")
    result = runner.invoke(app, ["--config", str(config), "import", "users", str(users)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "users.csv: 2 rows, 2 inserted, 0 updated, 0 unchanged, 0 rejected"
    )
    again = runner.invoke(app, ["--config", str(config), "import", "users", str(users)])
    assert again.stdout.strip().endswith("0 inserted, 0 updated, 2 unchanged, 0 rejected")


def test_a_bad_row_exits_1_lists_the_error_and_imports_nothing(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\n")
    loaded = runner.invoke(app, ["--config", str(config), "import", "users", str(users)])
    assert loaded.exit_code == 0
    events = tmp_path / "events.csv"
    events.write_text("user_id,type,ts\nu1,view,2024-01-01\nu1,view,2024-13-01\n")
    result = runner.invoke(app, ["--config", str(config), "import", "events", str(events)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: events.csv: 1 invalid row(s), nothing imported",
        "events.csv:3: ts: not an ISO 8601 timestamp: '2024-13-01'",
    ]
    assert _count(db_url, Event.id) == 0


def test_skip_invalid_imports_the_rest_and_names_the_rejects_file(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id,timezone\nu1,UTC\nu2,Nowhere/City\n")
    rejects = tmp_path / "bad-users.csv"
    result = runner.invoke(
        app,
        ["--config", str(config), "import", "users", str(users), "--skip-invalid",
         "--rejects", str(rejects)],
    )
    assert result.exit_code == 0, result.output
    assert "1 inserted" in result.stdout and "1 rejected" in result.stdout
    assert "Nowhere/City" in rejects.read_text()
    assert _count(db_url, User.id) == 1


def test_a_missing_or_semicolon_file_is_one_line_and_exit_1(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = _config(tmp_path, sqlite_url)
    missing = runner.invoke(
        app, ["--config", str(config), "import", "events", str(tmp_path / "nope.csv")]
    )
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: file not found"
    semicolons = tmp_path / "users.csv"
    semicolons.write_text("user_id;email\nu1;a@example.com\n")
    result = runner.invoke(app, ["--config", str(config), "import", "users", str(semicolons)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: users.csv:1: the header is separated by semicolons, not commas; "
        "save the file as comma-separated CSV"
    ]


def test_rejects_without_skip_invalid_is_a_usage_error(tmp_path: Path, sqlite_url: str) -> None:
    config = _config(tmp_path, sqlite_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\n")
    result = runner.invoke(
        app,
        ["--config", str(config), "import", "users", str(users), "--rejects", "x.csv"],
    )
    assert result.exit_code == 2 and "--rejects needs --skip-invalid" in result.output
    assert _count(sqlite_url, User.id) == 0


def test_a_mistyped_column_warns_with_did_you_mean_and_strict_refuses(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id,e_mail,vip\nu1,a@example.com,yes\n")
    result = runner.invoke(app, ["--config", str(config), "import", "users", str(users)])
    assert result.exit_code == 0, result.output
    # One line naming file, line and column; the unrelated extra column says nothing.
    assert result.stderr.strip().splitlines() == [
        "warning: users.csv:1: e_mail: unknown column kept as an attribute; "
        "did you mean 'email'?"
    ]
    assert "1 inserted" in result.stdout

    again = tmp_path / "users2.csv"
    again.write_text("user_id,E-Mail\nu2,b@example.com\n")
    strict = runner.invoke(
        app, ["--config", str(config), "import", "users", str(again), "--strict"]
    )
    assert strict.exit_code == 1
    assert strict.stderr.strip().splitlines() == [
        "error: users2.csv:1: unknown column(s) E-Mail (did you mean 'email'?); "
        "nothing imported (--strict)"
    ]
    assert _count(db_url, User.id) == 1


def test_an_unknown_event_column_gets_did_you_mean(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    events = tmp_path / "events.csv"
    events.write_text("user_id,type,ts,ammount\nu1,view,2024-01-01,3\n")
    result = runner.invoke(app, ["--config", str(config), "import", "events", str(events)])
    assert result.exit_code == 1
    assert "unknown column(s): ammount (did you mean 'amount'?)" in result.stderr


def test_skip_invalid_that_rejects_every_row_exits_1(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id,timezone\nu1,Nowhere/City\nu2,Mars/Base\n")
    result = runner.invoke(
        app, ["--config", str(config), "import", "users", str(users), "--skip-invalid"]
    )
    assert result.exit_code == 1
    assert "0 inserted" in result.stdout and "2 rejected" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: users.csv: every row was rejected (2); nothing imported"
    ]
    assert _count(db_url, User.id) == 0


def test_the_import_bar_counts_rows_of_a_known_total(sqlite_url: str, tmp_path: Path) -> None:
    from tests.tty import bar_counts, run_on_terminal

    config = _config(tmp_path, sqlite_url)
    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + "".join(f"u{i}\n" for i in range(50)))
    code, _out, screen = run_on_terminal(
        ["--config", str(config), "import", "users", str(users)], tmp_path
    )
    assert code == 0, screen
    counts = bar_counts(screen, "importing users.csv")
    assert counts and counts[-1] == "50/50" and all(c.endswith("/50") for c in counts), screen
