"""I/O: recommender model versions in ``model_versions`` (kind ``recommender``).

A recommender model is a recipe per scope (which candidate or blend, with which
weights) and the settings its components are built with; ``campaign recommend`` refits
it on the newest events every time. The artifact is that recipe as canonical JSON
(never a pickle), signed like a churn model's artifact with the model signing key,
so a changed row is refused instead of silently changing what customers are shown.
``params`` repeats it for people reading the table; ``metrics`` holds the tournament.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from campaign.common.artifact_signing import key_id, sign_artifact, signed_key_id, verifies
from campaign.common.errors import ModelError
from campaign.db.base import table_of
from campaign.db.models import ModelVersion

RECOMMENDER = "recommender"


@dataclass(frozen=True)
class RecommenderModel:
    """A stored recommender: the recipe of each scope and the components' settings."""

    id: int
    recipes: dict[str, dict[str, float]]
    settings: dict[str, Any]
    as_of: datetime
    window_days: int
    metrics: dict[str, Any]


def artifact_of(recipes: dict[str, dict[str, float]], settings: dict[str, Any]) -> bytes:
    """The canonical JSON bytes a version stores and signs."""
    payload = {"recipes": _ordered(recipes), "settings": settings, "format": 1}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _ordered(recipes: dict[str, dict[str, float]]) -> dict[str, list[list[object]]]:
    """Recipes as ``[name, weight]`` pairs: a blend's first part names it, so its order
    must survive canonical (key-sorted) JSON."""
    return {scope: [[name, weight] for name, weight in recipe.items()]
            for scope, recipe in recipes.items()}


def save_recommender(
    connection: Connection,
    *,
    recipes: dict[str, dict[str, float]],
    settings: dict[str, Any],
    trained_at: datetime,
    as_of: datetime,
    window_days: int,
    metrics: dict[str, Any],
    key: bytes,
) -> int:
    """Insert a new, inactive recommender version signed with ``key``; returns its id.

    Caller commits.
    """
    artifact = artifact_of(recipes, settings)
    result = connection.execute(
        table_of(ModelVersion).insert().values(
            kind=RECOMMENDER,
            trained_at=trained_at,
            as_of=as_of,
            horizon_days=window_days,
            params={"recipes": _ordered(recipes), "settings": settings},
            metrics=metrics,
            artifact=artifact,
            artifact_signature=sign_artifact(key, RECOMMENDER, artifact),
            library_versions={},
            active=False,
        )
    )
    inserted = result.inserted_primary_key
    assert inserted is not None  # a single-row INSERT always reports its key
    return int(inserted[0])


def activate_recommender(connection: Connection, version_id: int) -> None:
    """Make ``version_id`` the only active recommender. Caller commits."""
    table = table_of(ModelVersion)
    connection.execute(update(table).where(table.c.kind == RECOMMENDER).values(active=False))
    connection.execute(update(table).where(table.c.id == version_id).values(active=True))


def load_recommender(
    connection: Connection, key: bytes | Callable[[], bytes], version_id: int | None = None
) -> RecommenderModel | None:
    """The active recommender (or version ``version_id``); None when there is none.

    ``key`` may be a function, called only when there is a version to verify (so a
    shop without a trained recommender never needs the key).

    Raises:
        ModelError: the row's signature does not verify under the key, or its
            artifact is not a recommender recipe.
    """
    table = table_of(ModelVersion)
    statement = select(table).where(table.c.kind == RECOMMENDER)
    if version_id is None:
        statement = statement.where(table.c.active.is_(True))
    else:
        statement = statement.where(table.c.id == version_id)
    row = connection.execute(statement.order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    secret = key() if callable(key) else key
    artifact = bytes(row["artifact"])
    if not verifies(row["artifact_signature"], [secret], RECOMMENDER, artifact):
        signer = signed_key_id(row["artifact_signature"])
        why = (
            f"was signed with another key (id {signer}, this process has {key_id(secret)})"
            if signer is not None and signer != key_id(secret)
            else "does not verify (the row was changed, or is unsigned)"
        )
        raise ModelError(
            f"recommender model version {row['id']}: its signature {why}; not used: "
            "retrain it with `campaign train recommend`"
        )
    try:
        payload = json.loads(artifact)
        recipes = {
            str(scope): {str(name): float(weight) for name, weight in recipe}
            for scope, recipe in payload["recipes"].items()
        }
        settings = dict(payload["settings"])
    except (ValueError, KeyError, AttributeError, TypeError):
        raise ModelError(
            f"recommender model version {row['id']}: the artifact is not a recommender "
            "recipe; retrain it with `campaign train recommend`"
        ) from None
    return RecommenderModel(
        id=int(row["id"]),
        recipes=recipes,
        settings=settings,
        as_of=row["as_of"],
        window_days=int(row["horizon_days"]),
        metrics=dict(row["metrics"] or {}),
    )
