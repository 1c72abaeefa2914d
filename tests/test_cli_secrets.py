"""Each command needs exactly the secrets its work uses; a named one unset is one error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from tests.test_planner import add_user, make_config

runner = CliRunner()
ALL_SET = {"HOOK_SECRET": "h", "SERVER_SECRET": "s", "LINKS_NEW": "n", "LINKS_OLD": "o",
           "TWILIO_TOKEN": "t"}


@pytest.fixture
def shop(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Campaign ``c`` over file channels, plus a webhook channel and server secrets
    named by environment variables."""
    monkeypatch.chdir(tmp_path)
    for name in ALL_SET:
        monkeypatch.delenv(name, raising=False)
    make_config(tmp_path, sqlite_url)
    with (tmp_path / "config.toml").open("a") as config:
        config.write(
            '[channels.hook]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
            'secret_env = "HOOK_SECRET"\n'
            '[server]\nsecret_envs = ["SERVER_SECRET"]\n'
            'link_secret_envs = ["LINKS_NEW", "LINKS_OLD"]\n'
            'twilio_auth_token_env = "TWILIO_TOKEN"\n'
        )
    (tmp_path / "users.csv").write_text("user_id,email\nu1,u1@example.com\n")
    engine = make_engine(sqlite_url)
    add_user(engine, "c0")
    engine.dispose()
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stderr.strip()


def test_commands_that_use_no_secret_start_without_them(shop: Path) -> None:
    for args in (["import", "users", "users.csv"], ["templates", "lint"], ["report"],
                 ["status"], ["preview", "c", "--as-of", "2026-11-01"],
                 ["run", "c", "--as-of", "2026-11-01", "--dry-run"]):
        code, stderr = invoke(*args)
        assert "is not set" not in stderr and "not set:" not in stderr, (args, stderr)
        assert code == 0, (args, stderr)


def test_each_command_names_exactly_the_missing_secrets_it_needs(shop: Path) -> None:
    env = {"LINKS_OLD": "o"}  # the signing link key, both webhook secrets and Twilio unset
    code, stderr = invoke("send", "--once", env=env)
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    assert "HOOK_SECRET (channels.hook.secret_env" in stderr
    assert "LINKS_NEW (server.link_secret_envs[0]" in stderr
    assert "TWILIO_TOKEN" not in stderr and "SERVER_SECRET" not in stderr

    code, stderr = invoke("run", "c", "--as-of", "2026-11-01", env=env)
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    assert stderr.endswith(
        "server.link_secret_envs[0]: environment variable LINKS_NEW is not set "
        "(needed to sign unsubscribe links)"
    ), stderr

    code, stderr = invoke("serve", env=env)
    assert code == 1 and len(stderr.splitlines()) == 1, stderr
    for name in ("LINKS_NEW", "TWILIO_TOKEN", "HOOK_SECRET", "SERVER_SECRET"):
        assert name in stderr, stderr
    assert "verify provider webhooks" in stderr

    for command in (["daemon"], ["worker"]):
        code, stderr = invoke(*command, env=env)
        assert code == 1 and "HOOK_SECRET" in stderr and "LINKS_NEW" in stderr, stderr


def test_a_retired_link_key_may_be_gone(shop: Path) -> None:
    env = {k: v for k, v in ALL_SET.items() if k != "LINKS_OLD"}
    code, stderr = invoke("run", "c", "--as-of", "2026-11-01", env=env)
    assert code == 0, stderr


def test_with_every_named_secret_set_the_commands_run(shop: Path) -> None:
    code, stderr = invoke("run", "c", "--as-of", "2026-11-01", env=ALL_SET)
    assert code == 0, stderr
    code, stderr = invoke("send", "--once", env=ALL_SET)
    assert code == 0, stderr


def test_an_empty_variable_counts_as_unset(shop: Path) -> None:
    code, stderr = invoke("send", "--once", env={**ALL_SET, "HOOK_SECRET": ""})
    assert code == 1 and "HOOK_SECRET is not set" in stderr, stderr


def test_a_missing_secret_is_reported_with_the_invalid_values_in_one_run(shop: Path) -> None:
    with (shop / "config.toml").open("a") as config:
        config.write("[attribution]\nwindow_days = -3\n")
    code, stderr = invoke("send", "--once", env={"LINKS_OLD": "o"})
    assert code == 1, stderr
    # Both problems at once: fixing the value must not uncover a second error later.
    assert "attribution.window_days" in stderr, stderr
    assert "HOOK_SECRET" in stderr and "LINKS_NEW" in stderr, stderr
    # A command that uses no secret reports the invalid value alone.
    code, stderr = invoke("status")
    assert code == 1 and "attribution.window_days" in stderr and "HOOK_SECRET" not in stderr
