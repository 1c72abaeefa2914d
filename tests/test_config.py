"""Configuration loading: defaults, the example file, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.common.errors import ConfigError
from campaign.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    assert config.campaign("winback").holdout_share == 0.1
    assert config.channels["email"].kind == "file"


def test_defaults_use_sqlite_file_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, environ={})
    assert config.database_url() == f"sqlite:///{tmp_path / 'campaign.db'}"


def test_bad_value_names_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[channels.email]\nkind = "file"\npath = "out"\n'
        '[[campaigns]]\nname = "a"\nchannels = ["email"]\n'
        '[[campaigns]]\nname = "b"\nchannels = ["email"]\nholdout_share = 0.7\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: campaigns[1].holdout_share: must be between 0 and 0.5"


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[delivery]\nconcurency = 3\n")
    with pytest.raises(
        ConfigError, match=r"delivery\.concurency: unknown key \(did you mean .concurrency.\?\)"
    ):
        load_config(path, environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[database]\nurl = "sqlite:///a.db"\n[delivery]\nconcurrency = 4\n')
    config = load_config(
        path,
        environ={
            "CAMPAIGN_DATABASE_URL": "postgresql://u@h/db",
            "CAMPAIGN_DELIVERY__CONCURRENCY": "16",
        },
    )
    assert config.database.url == "postgresql://u@h/db"
    assert config.delivery.concurrency == 16


def test_secret_comes_from_named_environment_variable_and_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[channels.hook]\nkind = "webhook"\nurl = "http://127.0.0.1:1/x"\n'
        'secret_env = "HOOK_SECRET"\n'
    )
    config = load_config(path, environ={"HOOK_SECRET": "s3cret"})
    secret = config.channels["hook"].secret
    assert secret is not None and secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    unset = load_config(path, environ={})  # loads: only sending needs the secret
    assert unset.channels["hook"].secret is None
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        unset.require_secrets("send")


def test_campaign_naming_unknown_channel_is_rejected_at_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[campaigns]]\nname = "a"\nchannels = ["pigeon"]\n')
    with pytest.raises(ConfigError, match="unknown channel 'pigeon'"):
        load_config(path, environ={})


def test_bad_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[shop\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_clock_pins_the_default_as_of_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[clock]\nas_of = 2027-02-01T08:00:00+08:00\n")
    config = load_config(path, environ={})
    assert config.clock.as_of is not None
    assert config.clock.as_of.isoformat() == "2027-02-01T00:00:00+00:00"
    assert load_config(None, environ={}).clock.as_of is None
