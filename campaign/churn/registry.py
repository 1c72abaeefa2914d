"""I/O: model versions in ``model_versions`` (the artifact lives in the database).

Storing the pickled pipeline in the database lets every host (daemon, workers, a
laptop running ``campaign score``) load the same model without shared files. Each row
records the library versions it was built with; loading refuses an artifact from
another scikit-learn major version, whose pickles are not compatible.

Unpickling runs code, so every artifact is signed with a key kept outside the
database (:mod:`campaign.churn.artifacts`) and :func:`load_model` refuses one whose
signature does not verify *before* unpickling it.
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

from campaign.churn.artifacts import key_id, sign_artifact, signed_key_id, verifies
from campaign.common.errors import ModelError, NotFound
from campaign.db.base import table_of
from campaign.db.models import ModelVersion

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
    key: bytes,
    kind: str = CHURN,
) -> int:
    """Insert a new, inactive model version signed with ``key``; returns its id.

    Caller commits.
    """
    artifact = pickle.dumps(pipeline, protocol=5)
    result = connection.execute(
        table_of(ModelVersion).insert().values(
            kind=kind,
            trained_at=trained_at,
            as_of=as_of,
            horizon_days=horizon_days,
            params=params,
            metrics=metrics,
            artifact=artifact,
            artifact_signature=sign_artifact(key, kind, artifact),
            library_versions=library_versions(),
            active=False,
        )
    )
    inserted = result.inserted_primary_key
    assert inserted is not None  # a single-row INSERT always reports its key
    return int(inserted[0])


def activate(connection: Connection, version_id: int, kind: str = CHURN) -> None:
    """Make ``version_id`` the only active model of its kind. Caller commits."""
    table = table_of(ModelVersion)
    connection.execute(update(table).where(table.c.kind == kind).values(active=False))
    connection.execute(update(table).where(table.c.id == version_id).values(active=True))


def load_model(
    connection: Connection, version_id: int | None = None, kind: str = CHURN, *, key: bytes
) -> LoadedModel:
    """The active model of ``kind`` (or the version ``version_id``), unpickled once its
    signature verifies under ``key``.

    Raises:
        NotFound: no active model (train one first) or no such version.
        ModelError: the artifact is unsigned or its signature does not verify (it is
            then never unpickled), was built by another scikit-learn major version, or
            cannot be unpickled.
    """
    table = table_of(ModelVersion)
    statement = select(table).where(table.c.kind == kind)
    if version_id is None:
        statement = statement.where(table.c.active.is_(True))
    else:
        statement = statement.where(table.c.id == version_id)
    row = connection.execute(statement.order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        what = f"{kind} version {version_id}" if version_id else f"active {kind} model"
        raise NotFound("model", f"{what} (run `campaign train`)")
    check_signature(row, key)
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
    table = table_of(ModelVersion)
    value = connection.execute(
        select(table.c.id).where(table.c.kind == kind, table.c.active.is_(True))
    ).scalar()
    return None if value is None else int(value)


def check_signature(row: Any, key: bytes) -> None:
    """Raise :class:`ModelError` unless the ``model_versions`` row's artifact verifies.

    One line that says what to do: sign the rows stored before signing existed, use
    the key that signed them, or retrain.
    """
    signature = row["artifact_signature"]
    version = row["id"]
    if verifies(signature, [key], row["kind"], row["artifact"]):
        return
    if not signature:
        raise ModelError(
            f"model version {version} is not signed (stored before model signing): "
            "run `campaign models sign` once, or retrain with `campaign train`; not loaded"
        )
    signer = signed_key_id(signature)
    if signer is not None and signer != key_id(key):
        raise ModelError(
            f"model version {version} was signed with another key (id {signer}, this "
            f"process has {key_id(key)}): use the same CAMPAIGN_MODEL_KEY or key file on "
            "every host, or re-sign with `campaign models sign --previous-key-file`; "
            "not loaded"
        )
    raise ModelError(
        f"model version {version}: the artifact's signature does not verify (the row was "
        "changed in the database); it is not loaded: retrain with `campaign train`"
    )


@dataclass(frozen=True)
class SignReport:
    """What :func:`sign_models` did: ids signed now, already fine, and refused."""

    signed: list[int]
    unchanged: list[int]
    refused: list[int]


def sign_models(
    connection: Connection,
    key: bytes,
    *,
    previous_keys: tuple[bytes, ...] = (),
    unsigned: bool = True,
) -> SignReport:
    """Sign every model version with ``key`` that may be trusted. Caller commits.

    A row already signed with ``key`` is left alone. A row that verifies under one of
    ``previous_keys`` (a key rotation) is re-signed. A row with no signature at all
    (stored before signing existed) is signed when ``unsigned`` is on: that is the
    one-time step after the upgrade, and it trusts what the database holds then. A
    row whose signature verifies under no key given is *refused* and left as it is:
    it was changed, and signing it would bless the change.
    """
    table = table_of(ModelVersion)
    rows = connection.execute(
        select(table.c.id, table.c.kind, table.c.artifact, table.c.artifact_signature)
        .order_by(table.c.id)
    ).mappings().all()
    signed: list[int] = []
    unchanged: list[int] = []
    refused: list[int] = []
    for row in rows:
        signature = row["artifact_signature"]
        version = int(row["id"])
        if verifies(signature, [key], row["kind"], row["artifact"]):
            unchanged.append(version)
            continue
        trusted = (not signature and unsigned) or verifies(
            signature, previous_keys, row["kind"], row["artifact"]
        )
        if not trusted:
            refused.append(version)
            continue
        connection.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version)
            .values(artifact_signature=sign_artifact(key, row["kind"], row["artifact"]))
        )
        signed.append(version)
    return SignReport(signed, unchanged, refused)
