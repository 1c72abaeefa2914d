"""I/O: uplift versions in ``model_versions`` (kind ``uplift``, one active per campaign).

The artifact is the pickled :class:`campaign.uplift.model.UpliftModel` inside a
one-step pipeline, signed with the model key like a churn model's
(:mod:`campaign.churn.registry`: the signature is checked before unpickling).
``params`` names the campaign and the outcome; ``metrics`` holds the comparison the
training chose by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sklearn.pipeline import Pipeline
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from campaign.churn.registry import LoadedModel, load_model, save_model_version
from campaign.common.errors import ModelError, NotFound, did_you_mean
from campaign.db.base import table_of
from campaign.db.models import ModelVersion
from campaign.uplift.model import UpliftModel

UPLIFT = "uplift"


def save_uplift(
    connection: Connection, model: UpliftModel, *, trained_at: datetime, as_of: datetime,
    window_days: int, params: dict[str, Any], metrics: dict[str, Any], key: bytes,
) -> int:
    """Store ``model`` as a new version and make it its campaign's active one. Caller
    commits."""
    version = save_model_version(
        connection, pipeline=Pipeline([("uplift", model)]), trained_at=trained_at,
        as_of=as_of, horizon_days=window_days,
        params={**params, "campaign": model.campaign, "outcome": model.outcome},
        metrics=metrics, key=key, kind=UPLIFT,
    )
    table = table_of(ModelVersion)
    same = [row.id for row in connection.execute(
        select(table.c.id, table.c.params).where(table.c.kind == UPLIFT))
        if (row.params or {}).get("campaign") == model.campaign]
    connection.execute(update(table).where(table.c.id.in_(same)).values(active=False))
    connection.execute(update(table).where(table.c.id == version).values(active=True))
    return version


def active_uplift_campaigns(connection: Connection) -> dict[str, int]:
    """Campaign → its active uplift version id."""
    table = table_of(ModelVersion)
    rows = connection.execute(
        select(table.c.id, table.c.params).where(
            table.c.kind == UPLIFT, table.c.active.is_(True)).order_by(table.c.id)
    ).all()
    return {str((row.params or {}).get("campaign")): int(row.id) for row in rows}


def load_uplift(
    connection: Connection, campaign: str | None, *, key: bytes
) -> tuple[UpliftModel, LoadedModel]:
    """The active uplift model of ``campaign`` (None: the only one there is).

    Raises:
        NotFound: no uplift model (of that campaign).
        ModelError: several campaigns have one and none was named, or the artifact
            does not verify or load.
    """
    active = active_uplift_campaigns(connection)
    if campaign is None:
        if len(active) > 1:
            raise ModelError(
                f"uplift models exist for {len(active)} campaigns ({', '.join(sorted(active))}):"
                " name one with --campaign")
        if not active:
            raise NotFound("model", "uplift model (run `campaign train uplift`)")
        campaign = next(iter(active))
    if campaign not in active:
        raise NotFound(
            "model",
            f"uplift model of campaign {campaign!r}{did_you_mean(campaign, active)} "
            "(run `campaign train uplift --campaign NAME`)",
        )
    loaded = load_model(connection, active[campaign], kind=UPLIFT, key=key)
    model = loaded.pipeline.steps[-1][1]
    if not isinstance(model, UpliftModel):
        raise ModelError(f"model version {loaded.id}: not an uplift model")
    return model, loaded
