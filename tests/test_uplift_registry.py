"""Uplift versions: signed, one active per campaign, chosen by name when several exist."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from campaign.common.errors import ModelError, NotFound
from campaign.db.models import ModelVersion
from campaign.uplift.data import FEATURE_COLUMNS
from campaign.uplift.model import UpliftModel, UpliftTree
from campaign.uplift.registry import active_uplift_campaigns, load_uplift, save_uplift

KEY = b"k" * 32
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _model(campaign: str) -> UpliftModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((200, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    tree = UpliftTree(max_depth=2, min_samples_leaf=20).fit(
        X, rng.random(200) < 0.2, rng.random(200) < 0.5, np.full(200, 0.5))
    return UpliftModel(campaign, "converted", "tree", tree, tree, "EUR")


def _save(engine: Engine, campaign: str) -> int:
    with engine.begin() as connection:
        return save_uplift(connection, _model(campaign), trained_at=NOW, as_of=NOW,
                           window_days=14, params={}, metrics={}, key=KEY)


def test_each_campaign_keeps_its_own_active_version(engine: Engine) -> None:
    first_a = _save(engine, "a")
    b = _save(engine, "b")
    second_a = _save(engine, "a")
    with engine.connect() as connection:
        assert active_uplift_campaigns(connection) == {"a": second_a, "b": b}
        with pytest.raises(ModelError, match=r"2 campaigns \(a, b\): name one with --campaign"):
            load_uplift(connection, None, key=KEY)
        model, loaded = load_uplift(connection, "b", key=KEY)
        assert (model.campaign, loaded.id) == ("b", b)
        with pytest.raises(NotFound, match="uplift model of campaign 'c'"):
            load_uplift(connection, "c", key=KEY)
        active = dict(connection.execute(select(ModelVersion.id, ModelVersion.active)).all())
    assert active == {first_a: False, b: True, second_a: True}


def test_a_changed_artifact_is_refused_before_it_is_unpickled(engine: Engine) -> None:
    version = _save(engine, "a")
    with engine.begin() as connection:
        connection.execute(update(ModelVersion).where(ModelVersion.id == version)
                           .values(artifact=b"not what was signed"))
    with engine.connect() as connection, pytest.raises(ModelError):
        load_uplift(connection, "a", key=KEY)
