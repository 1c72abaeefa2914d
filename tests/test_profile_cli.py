"""``campaign segments`` through the real CLI on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from campaign.profile.segments import latest_segments
from tests.test_profile_queries import T, add_events, add_users, ago, buy, event

runner = CliRunner()


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    return config


def test_segments_command_stores_a_snapshot_and_prints_the_segments(
    tmp_path: Path, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)
    add_users(engine, *range(1, 9))
    add_events(
        engine,
        [buy(u, ago(3 + 20 * k + u), 500 * u) for u in range(1, 8) for k in range(u % 3 + 1)]
        + [event(8, "view", ago(1))],
    )
    config = _config(tmp_path, sqlite_url)
    result = runner.invoke(
        app, ["--config", str(config), "segments", "--as-of", "2026-11-01", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "8 users segmented as of 2026-11-01 00:00 UTC" in result.output
    assert "browsers" in result.output
    with engine.connect() as connection:
        stored = latest_segments(connection, T)
    engine.dispose()
    assert len(stored) == 8 and stored[8] == "browsers"


def test_segments_command_refuses_an_empty_shop_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = runner.invoke(app, ["--config", str(_config(tmp_path, sqlite_url)), "segments"])
    assert result.exit_code == 1
    assert "error: events not found" in result.output


def test_segments_command_rejects_a_bad_as_of(tmp_path: Path, sqlite_url: str) -> None:
    config = _config(tmp_path, sqlite_url)
    result = runner.invoke(app, ["--config", str(config), "segments", "--as-of", "soon"])
    assert result.exit_code == 2  # a bad option value is a usage error
    assert "--as-of" in result.output
