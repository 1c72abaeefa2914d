"""I/O: model versions in ``model_versions`` (the artifact lives in the database).

Storing the pickled pipeline in the database lets every host (daemon, workers, a
laptop running ``campaign score``) load the same model without shared files. Each row
records the library versions it was built with; loading refuses an artifact from
another scikit-learn major version, whose pickles are not compatible.
"""

from __future__ import annotations

import pickle
import platform
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from campaign.db.models import ModelVersion
from campaign.errors import ModelError, NotFound

CHURN = "churn"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled pipeline depends on."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def check_compatible(stored: dict[str, Any], version_id: int | None = None) -> None:
    """Raise :class:`ModelError` when ``stored`` names another scikit-learn major version."""
    built = str(stored.get("sklearn", ""))
    current = sklearn.__version__
    if not built or _major(built) != _major(current):
        where = f"model version {version_id}" if version_id is not None else "model artifact"
        raise ModelError(
            f"{where} was built with scikit-learn {built or 'unknown'}, this installation has "
            f"{current}: retrain it with `campaign train`"
        )


@dataclass(frozen=True)
class LoadedModel:
    """An active (or chosen) model version with its unpickled pipeline."""

    id: int
    pipeline: Pipeline
    as_of: datetime
    horizon_days: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    library_versions: dict[str, Any]


def save_model_version(
    connection: Connection,
    *,
    pipeline: Pipeline,
    trained_at: datetime,
    as_of: datetime,
    horizon_days: int,
    params: dict[str, Any],
    metrics: dict[str, Any],
    kind: str = CHURN,
) -> int:
    """Insert a new, inactive model version and return its id. Caller commits."""
    result = connection.execute(
        ModelVersion.__table__.insert().values(
            kind=kind,
            trained_at=trained_at,
            as_of=as_of,
            horizon_days=horizon_days,
            params=params,
            metrics=metrics,
            artifact=pickle.dumps(pipeline, protocol=5),
            library_versions=library_versions(),
            active=False,
        )
    )
    return int(result.inserted_primary_key[0])


def activate(connection: Connection, version_id: int, kind: str = CHURN) -> None:
    """Make ``version_id`` the only active model of its kind. Caller commits."""
    table = ModelVersion.__table__
    connection.execute(update(table).where(table.c.kind == kind).values(active=False))
    connection.execute(update(table).where(table.c.id == version_id).values(active=True))


def load_model(
    connection: Connection, version_id: int | None = None, kind: str = CHURN
) -> LoadedModel:
    """The active model of ``kind`` (or the version ``version_id``), unpickled.

    Raises:
        NotFound: no active model (train one first) or no such version.
        ModelError: the artifact was built by another scikit-learn major version or
            cannot be unpickled.
    """
    table = ModelVersion.__table__
    statement = select(table).where(table.c.kind == kind)
    if version_id is None:
        statement = statement.where(table.c.active.is_(True))
    else:
        statement = statement.where(table.c.id == version_id)
    row = connection.execute(statement.order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        key = f"{kind} version {version_id}" if version_id else f"active {kind} model"
        raise NotFound("model", f"{key} (run `campaign train`)")
    versions = dict(row["library_versions"] or {})
    check_compatible(versions, row["id"])
    try:
        pipeline = pickle.loads(row["artifact"])
    except Exception as exc:  # any unpickling failure means the same thing here
        raise ModelError(f"model version {row['id']}: cannot load artifact ({exc})") from None
    if not isinstance(pipeline, Pipeline):
        raise ModelError(f"model version {row['id']}: artifact is not a pipeline")
    return LoadedModel(
        id=int(row["id"]),
        pipeline=pipeline,
        as_of=row["as_of"],
        horizon_days=int(row["horizon_days"]),
        params=dict(row["params"] or {}),
        metrics=dict(row["metrics"] or {}),
        library_versions=versions,
    )


def active_model_id(connection: Connection, kind: str = CHURN) -> int | None:
    """Id of the active model of ``kind``, or None. Does not load the artifact."""
    table = ModelVersion.__table__
    value = connection.execute(
        select(table.c.id).where(table.c.kind == kind, table.c.active.is_(True))
    ).scalar()
    return None if value is None else int(value)
