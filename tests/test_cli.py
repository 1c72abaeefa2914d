"""The command line as a whole: version, help, errors as one line with exit 1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from campaign import __version__
from campaign.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found.extend(_commands(command, f"{path} "))
        else:
            found.append((path, command))
    return found


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"campaign {__version__}"


def test_every_command_has_help_text_and_a_readme_row() -> None:
    readme = (ROOT / "README.md").read_text()
    root = get_command(app)
    assert hasattr(root, "commands")
    commands = _commands(root)
    assert commands, "no commands registered"
    for path, command in commands:
        assert (command.help or command.short_help or "").strip(), f"{path} has no help"
        assert re.search(rf"`campaign {re.escape(path)}\b", readme), f"{path} missing in README"


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[delivery]\nconcurrency = 0\n")
    result = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {config}: delivery.concurrency: input should be greater than or equal to 1"
    ]


def test_unreachable_database_is_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n')
    result = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database postgresql")
    assert "cannot connect" in lines[0] and "Traceback" not in result.output


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[delivery]\nconcurrency = 0\n")
    result = runner.invoke(app, ["--config", str(config), "--debug", "db", "upgrade"])
    assert result.exit_code != 0
    assert result.exception is not None and type(result.exception).__name__ == "ConfigError"


def test_db_upgrade_migrates_an_empty_database_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert first.exit_code == 0, first.output
    assert "upgraded empty ->" in first.stdout
    second = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert second.exit_code == 0 and "already at revision" in second.stdout


def test_commands_needing_a_migrated_database_say_how_to_fix_it(tmp_path: Path) -> None:
    from campaign.cli.common import AppState
    from campaign.common.errors import DatabaseError

    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "empty.db"}"\n')
    state = AppState(config_path=config)
    try:
        state.engine()
    except DatabaseError as exc:
        assert "run 'campaign db upgrade'" in str(exc)
    else:  # pragma: no cover - the assertion below explains the failure
        raise AssertionError("an empty database was accepted")
    finally:
        if state._engine is not None:
            state._engine.dispose()
