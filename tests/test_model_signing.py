"""Model artifacts are pickles loaded from the database: each is signed with a key kept
outside it, and a row that does not verify is refused before anything is unpickled.
"""

from __future__ import annotations

import os
import pickle
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier
from sqlalchemy import update
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaign.churn.artifacts import key_id, model_key, read_key_file
from campaign.churn.registry import activate, load_model, save_model_version, sign_models
from campaign.cli import app
from campaign.common.errors import ModelError
from campaign.config import ModelConfig, load_config
from campaign.db.models import ModelVersion

KEY = b"k" * 32
OTHER = b"o" * 32
T = datetime(2026, 11, 1, tzinfo=UTC)
runner = CliRunner()


class _Exploit:
    """A pickle that runs code when loaded: it makes the folder ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _pipeline() -> Pipeline:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    return Pipeline([("tree", DecisionTreeClassifier(random_state=0))]).fit(x, [0, 0, 1, 1])


def _store(engine: Engine, key: bytes = KEY) -> int:
    with engine.begin() as connection:
        version = save_model_version(
            connection, pipeline=_pipeline(), trained_at=T, as_of=T, horizon_days=90,
            params={}, metrics={}, key=key,
        )
        activate(connection, version)
    return version


def _set(engine: Engine, version: int, **values: Any) -> None:
    table = ModelVersion.__table__
    with engine.begin() as connection:
        connection.execute(update(table).where(table.c.id == version).values(**values))


def test_a_signed_artifact_loads(engine: Engine) -> None:
    version = _store(engine)
    with engine.connect() as connection:
        assert load_model(connection, key=KEY).id == version


def test_a_tampered_artifact_row_is_refused_before_it_is_unpickled(
    engine: Engine, tmp_path: Path
) -> None:
    version = _store(engine)
    marker = tmp_path / "pwned"
    _set(engine, version, artifact=pickle.dumps(_Exploit(marker)))
    with engine.connect() as connection, pytest.raises(ModelError) as caught:
        load_model(connection, key=KEY)
    assert "does not verify" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()  # the pickle never ran


def test_a_row_signed_with_another_key_is_refused_and_says_so(engine: Engine) -> None:
    _store(engine, key=OTHER)
    with engine.connect() as connection, pytest.raises(ModelError, match=key_id(OTHER)):
        load_model(connection, key=KEY)


def test_an_unsigned_row_from_before_the_upgrade_is_refused_until_signed(
    engine: Engine, tmp_path: Path
) -> None:
    version = _store(engine)
    _set(engine, version, artifact_signature=None)
    with engine.connect() as connection, pytest.raises(ModelError, match="models sign"):
        load_model(connection, key=KEY)
    tampered = _store(engine)
    _set(engine, tampered, artifact=pickle.dumps(_Exploit(tmp_path / "pwned")))
    with engine.begin() as connection:
        report = sign_models(connection, KEY)
    assert (report.signed, report.refused) == ([version], [tampered])
    with engine.connect() as connection:
        assert load_model(connection, version_id=version, key=KEY).id == version
        with pytest.raises(ModelError, match="does not verify"):
            load_model(connection, version_id=tampered, key=KEY)
    assert not (tmp_path / "pwned").exists()


def test_signing_again_after_a_rotation_needs_the_previous_key(engine: Engine) -> None:
    version = _store(engine, key=OTHER)
    with engine.begin() as connection:
        assert sign_models(connection, KEY).refused == [version]
    with engine.begin() as connection:
        assert sign_models(connection, KEY, previous_keys=(OTHER,)).signed == [version]
    with engine.connect() as connection:
        assert load_model(connection, key=KEY).id == version


def test_the_key_file_is_made_once_beside_the_config_and_private(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    config = load_config(tmp_path / "config.toml", environ={})
    key = model_key(config.model)
    path = tmp_path / "model-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64 and model_key(config.model) == key == read_key_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "model-signing.key"]


def test_the_environment_key_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[model]\nsigning_key_env = "MY_MODEL_KEY"\n', encoding="utf-8"
    )
    config = load_config(tmp_path / "config.toml", environ={"MY_MODEL_KEY": "from-env"})
    assert model_key(config.model) == b"from-env"
    assert not (tmp_path / "model-signing.key").exists()
    assert "from-env" not in repr(config.model)


def test_an_unwritable_key_folder_is_one_clear_error(tmp_path: Path) -> None:
    config = ModelConfig(signing_key_file=str(tmp_path / "missing" / "dir" / "k"))
    (tmp_path / "missing").write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot create it"):
        model_key(config)


def test_models_sign_command_signs_old_rows_and_exits_1_on_a_tampered_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    from campaign.db.engine import make_engine

    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    key = model_key(load_config(config, environ={}).model)
    engine = make_engine(sqlite_url)
    old = _store(engine, key=key)
    _set(engine, old, artifact_signature=None)
    engine.dispose()
    result = runner.invoke(app, ["--config", str(config), "models", "sign"])
    assert result.exit_code == 0, result.output
    assert "1 signed now, 0 already signed" in result.stdout
    again = runner.invoke(app, ["--config", str(config), "models", "sign"])
    assert "0 signed now, 1 already signed" in again.stdout
    engine = make_engine(sqlite_url)
    _set(engine, old, artifact=pickle.dumps(_pipeline()) + b" ")
    engine.dispose()
    refused = runner.invoke(app, ["--config", str(config), "models", "sign"])
    assert refused.exit_code == 1 and f"model version(s) {old}" in refused.stderr
