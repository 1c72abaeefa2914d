"""Scoring customers with an uplift model: uplift, segment and reason per customer."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaign.config import UpliftConfig
from campaign.db.models import User
from campaign.profile import profile_frame
from campaign.uplift.data import FEATURE_COLUMNS, fill_unseen, user_attributes
from campaign.uplift.model import UpliftModel, segments
from campaign.uplift.reasons import leaf_paths, reason

SCORE_COLUMNS = ("user_id", "uplift", "control", "segment", "reason")


def predict_frame(
    model: UpliftModel, features: pd.DataFrame, config: UpliftConfig
) -> pd.DataFrame:
    """Pure: :data:`SCORE_COLUMNS` but ``user_id`` (index kept) for a feature frame
    (:data:`FEATURE_COLUMNS`, plus ``attributes`` dicts when the model reads some)."""
    inputs = features[list(FEATURE_COLUMNS)].astype(float)
    if model.encoder is not None and model.encoder.columns_:
        attributes = features["attributes"] if "attributes" in features else [{}] * len(inputs)
        inputs = pd.concat(
            [inputs, model.encoder.transform(list(attributes), index=inputs.index)], axis=1)
    predicted = model.predict(inputs)
    paths = leaf_paths(model.tree.tree_, model.tree.features_)
    out = predicted[["uplift", "control"]].copy()
    out["segment"] = segments(out["uplift"].to_numpy(), out["control"].to_numpy(),
                              delta=config.delta, base_rate=config.base_rate)
    out["reason"] = [
        reason(float(u), paths[int(leaf)], outcome=model.outcome, delta=config.delta,
               currency=model.currency)
        for u, leaf in zip(predicted["uplift"], predicted["leaf"], strict=True)
    ]
    return out


def score_users(
    connection: Connection, model: UpliftModel, config: UpliftConfig, as_of: datetime
) -> tuple[pd.DataFrame, dict[int, str]]:
    """(scores, shop ids): every customer with an event before ``as_of`` (forgotten
    ones left out) scored from the profile as of ``as_of``, indexed by our user id, with
    :data:`SCORE_COLUMNS` but ``user_id``, plus ``avg_order_value_cents`` (the
    profile's); and our id → the shop's id. What ``campaign score uplift`` prints and a
    run ranks by. Read-only."""
    profile = profile_frame(connection, as_of)
    features = fill_unseen(profile.reindex(columns=list(FEATURE_COLUMNS)).astype(float))
    users = dict(connection.execute(
        select(User.id, User.external_id).where(User.forgotten_at.is_(None))).all())
    features = features[features.index.isin(list(users))].copy()
    if model.encoder is not None:
        attributes = user_attributes(connection, [int(i) for i in features.index])
        features["attributes"] = [attributes.get(int(i), {}) for i in features.index]
    scored = predict_frame(model, features, config)
    scored["avg_order_value_cents"] = features["avg_order_value_cents"]
    return scored, users


def score_customers(
    connection: Connection, model: UpliftModel, config: UpliftConfig, as_of: datetime
) -> pd.DataFrame:
    """Every customer with an event before ``as_of`` (forgotten ones left out), highest
    uplift first: :data:`SCORE_COLUMNS` with ``user_id`` the shop's id. Read-only."""
    scored, users = score_users(connection, model, config, as_of)
    externals = [users[int(i)] for i in scored.index]
    scored = scored.reset_index(drop=True)
    scored.insert(0, "user_id", externals)
    return scored.sort_values(["uplift", "user_id"], ascending=[False, True]).reset_index(
        drop=True)[list(SCORE_COLUMNS)]
