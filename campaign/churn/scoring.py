"""Score every customer with the active model and keep the scores in ``churn_scores``.

Everyone who is a customer at the as-of time is scored, including users who opted
out of marketing: targeting leaves them out later (GDPR Art. 21), but a risk figure
that silently skips them would make every evaluation look better than it is.

Reasons are stored in the user's locale (``zh*`` → Chinese, anything else or unknown
→ English), so templates can show them as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from campaign.churn.artifacts import model_key
from campaign.churn.data import load_summary, load_user_info
from campaign.churn.model import assign_tiers, predict_risk, snapshot_horizon
from campaign.churn.reasons import explain
from campaign.churn.registry import active_model_id, load_model
from campaign.config import ModelConfig
from campaign.db.base import table_of
from campaign.db.models import ChurnScore

SCORE_COLUMNS: tuple[str, ...] = ("risk", "tier", "reason")
_CHUNK = 50_000
_INSERT_BATCH = 10_000


def score_summary(
    pipeline: object,
    summary: pd.DataFrame,
    locales: pd.Series | None,
    thresholds: dict[str, float],
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Risk, tier and reason for each row of ``summary`` (pure; chunked for progress).

    Returns a frame indexed like ``summary`` with columns ``risk``, ``tier``, ``reason``.
    """
    parts = []
    for start in range(0, len(summary), _CHUNK):
        chunk = summary.iloc[start : start + _CHUNK]
        risk = predict_risk(pipeline, chunk)  # type: ignore[arg-type]
        parts.append(
            pd.DataFrame(
                {
                    "risk": risk,
                    "tier": assign_tiers(risk, thresholds),
                    "reason": explain(pipeline, chunk, locales),  # type: ignore[arg-type]
                }
            )
        )
        if progress:
            progress(len(chunk))
    if not parts:
        return pd.DataFrame(
            {"risk": pd.Series(dtype=float), "tier": pd.Series(dtype=object),
             "reason": pd.Series(dtype=object)},
            index=summary.index,
        )
    return pd.concat(parts)


def score_and_store(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Score every customer at ``as_of`` with the active model and store the scores.

    Replaces earlier scores of the same model and as-of time (one transaction).
    ``progress`` is told how many users were scored, chunk by chunk.

    Returns a frame indexed by ``user_id`` with columns ``external_id``, ``risk``,
    ``tier``, ``reason``, sorted by risk, highest first.

    Raises:
        NotFound: no active churn model.
        ModelError: the active model's artifact cannot be loaded or does not verify
            under the model signing key.
    """
    key = model_key(config)
    with engine.begin() as connection:
        model = load_model(connection, key=key)
        scores, users = store_scores(connection, model.id, model.pipeline, config, as_of, progress)
    out = scores.join(users["external_id"])[["external_id", *SCORE_COLUMNS]]
    return out.sort_values("risk", ascending=False, kind="stable")


def store_scores(
    connection: Connection,
    version_id: int,
    pipeline: object,
    config: ModelConfig,
    as_of: datetime,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every customer at ``as_of`` with ``pipeline`` and store the scores under
    model ``version_id``, replacing that model's earlier scores at ``as_of``.

    Runs on the caller's connection, so training can activate a model and store its
    scores in one commit: no reader ever sees an active model without scores.

    Returns the scores (``risk``, ``tier``, ``reason``) and the users' info frame.
    """
    summary = load_summary(
        connection, as_of, lookback_days=config.lookback_days,
        horizon_days=snapshot_horizon(pipeline),
    )
    users = load_user_info(connection, summary.index)
    scores = score_summary(pipeline, summary, users["locale"], config.tier_thresholds, progress)
    table = table_of(ChurnScore)
    connection.execute(
        delete(table).where(table.c.model_version_id == version_id, table.c.as_of == as_of)
    )
    rows = [
        {
            "user_id": int(user_id),
            "model_version_id": version_id,
            "as_of": as_of,
            "risk": float(risk),
            "tier": tier,
            "reason": reason,
        }
        for user_id, risk, tier, reason in zip(
            scores.index, scores["risk"], scores["tier"], scores["reason"], strict=True
        )
    ]
    for start in range(0, len(rows), _INSERT_BATCH):
        connection.execute(table.insert(), rows[start : start + _INSERT_BATCH])
    return scores, users


def latest_scores(connection: Connection, as_of: datetime) -> pd.DataFrame:
    """The active model's newest stored scores at or before ``as_of``. Read-only.

    Returns a frame indexed by ``user_id`` with columns ``risk`` (0..1), ``tier``,
    ``reason``; empty when there is no active model or it has no scores yet.
    """
    empty = pd.DataFrame(
        {"risk": pd.Series(dtype=float), "tier": pd.Series(dtype=object),
         "reason": pd.Series(dtype=object)},
        index=pd.Index([], name="user_id", dtype="int64"),
    )
    version = active_model_id(connection)
    if version is None:
        return empty
    table = table_of(ChurnScore)
    newest = connection.execute(
        select(func.max(table.c.as_of)).where(
            table.c.model_version_id == version, table.c.as_of <= as_of
        )
    ).scalar()
    if newest is None:
        return empty
    result = connection.execute(
        select(table.c.user_id, table.c.risk, table.c.tier, table.c.reason).where(
            table.c.model_version_id == version, table.c.as_of == newest
        )
    )
    # Plain tuples: pandas probes Row objects attribute by attribute, which costs
    # seconds per 100,000 rows.
    rows = [tuple(row) for row in result]
    frame = pd.DataFrame.from_records(rows, columns=["user_id", *SCORE_COLUMNS])
    return frame.set_index("user_id").sort_index()
