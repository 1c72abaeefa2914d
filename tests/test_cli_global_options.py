"""Global options (``--config``, ``--debug``) work before and after every subcommand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from campaign.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
# `campaign demo` always uses the config.toml it writes into its own folder.
OWN_CONFIG = {"demo"}
# What a command needs beyond its required arguments to get as far as loading the config.
EXTRA = {("pause",): ["--all"], ("resume",): ["--all"], ("prune",): ["--older-than", "400"]}


def _leaves(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            found.extend(_leaves(command, (*prefix, name)))
        else:
            found.append(((*prefix, name), command))
    return found


COMMANDS = [(path, command) for path, command in _leaves(get_command(app))]


def _arguments(command: Any, existing: Path) -> list[str]:
    """A value for each required positional argument (an existing file does for all)."""
    return [
        str(existing)
        for param in command.params
        if param.param_type_name == "argument" and param.required
    ]


@pytest.mark.parametrize(
    "path,command", [c for c in COMMANDS if c[0][0] not in OWN_CONFIG],
    ids=[" ".join(c[0]) for c in COMMANDS if c[0][0] not in OWN_CONFIG],
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_config_and_debug_are_honoured_on_either_side(
    path: tuple[str, ...], command: Any, where: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMPAIGN_CONFIG", raising=False)
    existing = tmp_path / "input.csv"
    existing.write_text("user_id\n")
    missing = tmp_path / "nowhere.toml"
    args = [*path, *_arguments(command, existing), *EXTRA.get(path, [])]
    options = ["--config", str(missing)]
    argv = [*options, *args] if where == "before" else [*args, *options]

    result = runner.invoke(app, argv)
    assert result.exit_code == 1, (argv, result.output)
    assert result.stderr.strip() == f"error: {missing}: file not found", argv

    debug = [*argv, "--debug"] if where == "after" else ["--debug", *argv]
    result = runner.invoke(app, debug)
    assert type(result.exception).__name__ == "ConfigError", (debug, result.output)


def test_demo_accepts_the_global_options_after_it_too(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--config", str(tmp_path / "x.toml"), "--debug",
                                 "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.stdout and "--debug" in result.stdout


def test_every_command_lists_the_global_options_in_its_help() -> None:
    for path, _ in COMMANDS:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "--config" in result.stdout and "--debug" in result.stdout, path


def test_the_option_after_the_command_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    result = runner.invoke(app, ["--config", str(first), "report", "--config", str(second)])
    assert result.stderr.strip() == f"error: {second}: file not found"


@pytest.mark.slow
def test_real_process_takes_config_after_a_nested_command(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n')
    upgrade = subprocess.run(
        [sys.executable, "-m", "campaign", "db", "upgrade", "--config", str(config)],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                         "PYTHONPATH": str(REPO)},
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert (tmp_path / "c.db").is_file()
    status = subprocess.run(
        [sys.executable, "-m", "campaign", "pause", "--all", "--config", str(config),
         "--reason", "maintenance"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                         "PYTHONPATH": str(REPO)},
    )
    assert status.returncode == 0, status.stderr
    assert "pause-all is on" in status.stdout
    assert not (tmp_path / "campaign.db").exists()
