"""Orchestration: labelled snapshots, training, the forward evaluation, champion/challenger.

Time layout for an as-of time T and horizon h (``k`` = ``model.snapshots``)::

    training rows   snapshots at T-h, T-2h, ..., T-kh   labels from (t, t+h]
    evaluation      fit on T-2h, ..., T-(k+1)h; score the snapshot at T-h;
                    compare with what happened in (T-h, T]   (the "holdout")

Depth and leaf size are chosen on the newest snapshot of each fit, trained on the
older ones (:func:`campaign.churn.model.fit_churn_model`). ``campaign train`` reports
the holdout figures of its recipe, the recency and BG/NBD baselines on the same split, and
activates the new model only when it is not worse than the active one there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score
from sqlalchemy import or_, select
from sqlalchemy.engine import Connection, Engine

from campaign.churn.artifacts import model_key
from campaign.churn.data import event_span, load_labels, load_summary
from campaign.churn.evaluate import (
    BGNBDBaseline,
    RecencyBaseline,
    churn_metrics,
    comparison_table,
)
from campaign.churn.model import FitResult, fit_churn_model, predict_risk
from campaign.churn.registry import (
    LoadedModel,
    activate,
    load_model,
    save_model_version,
)
from campaign.churn.splits import FIGURE_DECIMALS, split_label
from campaign.common.errors import CampaignError, ModelError, NotFound
from campaign.config import ModelConfig
from campaign.db.models import Message, MessageStatus

Snapshot = tuple[pd.DataFrame, pd.Series]
Progress = Callable[[int], None] | None

TREE = "tree"
RECENCY = "recency baseline"
BGNBD = "BG/NBD baseline"


def evaluation_steps(config: ModelConfig) -> int:
    """Progress units :func:`evaluate_churn` reports: the holdout and each snapshot."""
    return config.snapshots + 1


def training_steps(config: ModelConfig) -> int:
    """Progress units :func:`train_churn` reports: its snapshots, then the evaluation's."""
    return config.snapshots + evaluation_steps(config)


def default_as_of(connection: Connection) -> datetime:
    """The newest event time: the default T, so the commands work with no flags.

    Raises:
        ModelError: there are no events.
    """
    _, last = event_span(connection)
    if last is None:
        raise ModelError("no events in the database: import events first")
    return last


def _first_event_and_as_of(
    connection: Connection, as_of: datetime | None
) -> tuple[datetime, datetime]:
    """The oldest event's time and T (``as_of``, else :func:`default_as_of`).

    Raises:
        ModelError: the database holds no events.
    """
    first, _ = event_span(connection)
    if first is None:
        raise ModelError("no events in the database: import events first")
    return first, as_of or default_as_of(connection)


def labelled_snapshot(
    connection: Connection, at: datetime, horizon_days: int, lookback_days: int
) -> Snapshot:
    """Customers' summary at ``at`` and their labels from ``(at, at + horizon]``."""
    summary = load_summary(
        connection, at, lookback_days=lookback_days, horizon_days=horizon_days
    )
    labels = load_labels(connection, summary.index, at, horizon_days)
    # Campaigns change treated users' outcomes. Learning from them would teach the
    # tree that "received a win-back coupon" means "stays", and it would then rank the
    # very customers we saved as safe. So labels come only from customers no message
    # reached in the label window (held-out and untreated users): the model predicts
    # churn *without* us, which is the risk a campaign should act on. The campaign's
    # effect is measured by the holdout, not learned here (docs/measurement.md).
    treated = summary.index.isin(_treated_users(connection, at, horizon_days))
    return summary[~treated], labels[~treated]


def _treated_users(connection: Connection, at: datetime, horizon_days: int) -> pd.Index:
    """Users sent a (non-test) campaign message in ``(at, at + horizon)``.

    The end is open: a message sent at the very end of the label window cannot have
    changed a purchase inside it, so its user keeps their label.
    """
    end = at + timedelta(days=horizon_days)
    statement = (
        select(Message.user_id)
        .where(
            Message.status == MessageStatus.SENT.value,
            Message.sent_at > at,
            Message.sent_at < end,
            or_(Message.is_test.is_(None), Message.is_test.is_(False)),
        )
        .distinct()
    )
    return pd.Index([row[0] for row in connection.execute(statement)], name="user_id")


def _snapshots(
    connection: Connection,
    newest: datetime,
    config: ModelConfig,
    horizon_days: int,
    first_event: datetime,
    progress: Progress,
) -> list[Snapshot]:
    """Labelled snapshots at newest, newest - h, ... (newest first), skipping empty ones."""
    out: list[Snapshot] = []
    for j in range(config.snapshots):
        at = newest - timedelta(days=j * horizon_days)
        if at <= first_event:
            break
        summary, labels = labelled_snapshot(connection, at, horizon_days, config.lookback_days)
        if progress:
            progress(1)
        if len(labels) and labels.nunique() == 2:
            out.append((summary, labels))
    return out


def _fit(snapshots: list[Snapshot], config: ModelConfig, horizon_days: int) -> FitResult:
    return fit_churn_model(
        snapshots,
        horizon_days=horizon_days,
        depth_candidates=config.max_depth_candidates,
        leaf_candidates=config.min_samples_leaf_candidates,
        random_state=config.random_state,
    )


@dataclass
class Evaluation:
    """The forward split's figures: tree vs the baselines on the holdout snapshot."""

    as_of: datetime
    horizon_days: int
    train_at: datetime
    holdout_at: datetime
    fit: FitResult
    holdout: Snapshot
    table: pd.DataFrame  # rows: metrics; columns: TREE, RECENCY, BGNBD
    training: list[Snapshot] = field(default_factory=list)

    def metric(self, model: str = TREE, name: str = "roc_auc") -> float:
        """One figure of the table."""
        return float(self.table.at[name, model])

    @property
    def split(self) -> str:
        """This evaluation's split, e.g. ``holdout 2026-08-03 to 2026-11-01``."""
        return split_label(self.holdout_at, self.as_of)


def _check_enough(
    config: ModelConfig, as_of: datetime, first_event: datetime, customers: int, at: datetime
) -> None:
    history = (as_of - first_event).total_seconds() / 86400
    if history < config.min_history_days:
        raise ModelError(
            f"too little history to train: {history:.0f} days of events before {as_of:%Y-%m-%d}"
            f" (need {config.min_history_days}; config model.min_history_days)"
        )
    if customers < config.min_customers:
        raise ModelError(
            f"too few customers to train: {customers} at {at:%Y-%m-%d} (need "
            f"{config.min_customers}; config model.min_customers)"
        )


def evaluate_churn(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    *,
    progress: Progress = None,
) -> Evaluation:
    """The honest offline check at T: fit up to T-2h, score T-h, compare with (T-h, T].

    Read-only. Every customer counts, including those who opted out of marketing.

    Raises:
        ModelError: no events, too little history or too few customers.
    """
    horizon = horizon_days or config.horizon_days
    with engine.connect() as connection:
        first, t = _first_event_and_as_of(connection, as_of)
        holdout_at = t - timedelta(days=horizon)
        train_at = t - timedelta(days=2 * horizon)
        holdout = labelled_snapshot(connection, holdout_at, horizon, config.lookback_days)
        if progress:
            progress(1)
        snapshots = _snapshots(connection, train_at, config, horizon, first, progress)
    _check_enough(config, t, first, len(snapshots[0][1]) if snapshots else 0, train_at)
    fit = _fit(snapshots, config, horizon)
    summary, labels = holdout
    if labels.empty:
        raise ModelError(f"no customers at {holdout_at:%Y-%m-%d} to evaluate on")
    train_x, train_y = pd.concat([s for s, _ in snapshots]), pd.concat([y for _, y in snapshots])
    baseline = RecencyBaseline().fit(train_x, train_y)
    bgnbd = BGNBDBaseline(horizon).fit(train_x, train_y)
    table = comparison_table(
        {
            TREE: churn_metrics(labels, predict_risk(fit.pipeline, summary)),
            RECENCY: churn_metrics(labels, baseline.predict_proba(summary)[:, 1]),
            BGNBD: churn_metrics(labels, bgnbd.predict_proba(summary)[:, 1]),
        }
    )
    return Evaluation(t, horizon, train_at, holdout_at, fit, holdout, table, snapshots)


@dataclass
class TrainReport:
    """What ``campaign train`` did and why."""

    version_id: int
    activated: bool
    decision: str
    params: dict[str, Any]
    evaluation: Evaluation | None
    champion_id: int | None = None
    champion_roc_auc: float | None = None
    notes: list[str] = field(default_factory=list)


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN (PostgreSQL rejects it): store null instead.
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()
    }


def _compare(
    champion: LoadedModel, challenger: FitResult, evaluation: Evaluation
) -> tuple[float, float, str]:
    """ROC AUC of champion and challenger on the same holdout, and how it was measured.

    A champion trained at or before the holdout time never saw its outcomes: it is
    scored as stored, against the challenger's recipe fitted one horizon earlier (the
    evaluation model), so both are out of sample. A champion trained later did see
    (some of) them; then both final models are scored on the holdout, so neither has
    a head start. Retraining on the same data therefore ties, and a tie activates.
    """
    summary, labels = evaluation.holdout
    champion_risk = predict_risk(champion.pipeline, summary)
    if champion.as_of <= evaluation.holdout_at:
        challenger_risk = predict_risk(evaluation.fit.pipeline, summary)
        how = "both out of sample"
    else:
        challenger_risk = predict_risk(challenger.pipeline, summary)
        how = "both final models; the active one is newer than the holdout"
    return (
        float(roc_auc_score(labels, champion_risk)),
        float(roc_auc_score(labels, challenger_risk)),
        how,
    )


def train_churn(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    *,
    now: datetime,
    progress: Progress = None,
) -> TrainReport:
    """Train a churn model at T, store it, and activate it when it is not worse.

    ``now`` is the wall-clock time recorded as ``trained_at``. Transactional: the new
    version row, the activation switch and (when activated) every customer's score at
    T commit together.

    Raises:
        ModelError: no events, too little history (``min_history_days``), too few
            customers (``min_customers``) or one label class only.
    """
    horizon = horizon_days or config.horizon_days
    key = model_key(config)  # before the work: a missing key fails at once
    with engine.connect() as connection:
        first, t = _first_event_and_as_of(connection, as_of)
        newest = t - timedelta(days=horizon)
        snapshots = _snapshots(connection, newest, config, horizon, first, progress)
    _check_enough(config, t, first, len(snapshots[0][1]) if snapshots else 0, newest)
    fit = _fit(snapshots, config, horizon)
    notes: list[str] = []
    evaluation: Evaluation | None
    try:
        evaluation = evaluate_churn(engine, config, t, horizon, progress=progress)
    except ModelError as exc:
        evaluation = None
        notes.append(f"no forward holdout: {exc}")
    metrics: dict[str, Any] = {}
    if evaluation is not None:
        for model, column in (
            (TREE, "holdout"), (RECENCY, "holdout_recency"), (BGNBD, "holdout_bgnbd")
        ):
            metrics[column] = _json_safe(evaluation.table[model].to_dict())
        metrics["holdout_at"] = evaluation.holdout_at.isoformat()
        metrics["holdout_to"] = evaluation.as_of.isoformat()
    if not fit.validation.empty:
        metrics["validation_roc_auc"] = float(fit.validation["roc_auc"].max())

    with engine.begin() as connection:
        try:
            champion: LoadedModel | None = load_model(connection, key=key)
        except NotFound:
            champion = None
        except CampaignError as exc:  # an unloadable champion cannot defend its title
            champion = None
            notes.append(f"active model ignored: {exc}")
        champion_auc: float | None = None
        if champion is None:
            activated, decision = True, "activated: no active model yet"
        elif evaluation is None:
            activated = True
            decision = f"activated without comparison (no forward holdout); replaces {champion.id}"
        else:
            challenger_auc, how = evaluation.metric(), "not comparable"
            try:
                champion_auc, challenger_auc, how = _compare(champion, fit, evaluation)
            except (CampaignError, KeyError, ValueError) as exc:
                champion_auc = None
                notes.append(f"active model {champion.id} cannot score this data: {exc}")
            d = FIGURE_DECIMALS
            if champion_auc is None or round(challenger_auc, d) >= round(champion_auc, d):
                activated = True
                decision = (
                    f"activated: ROC AUC {challenger_auc:.{d}f} on the {evaluation.split} "
                    f"is not worse than active model {champion.id}'s "
                    + ("(not comparable)" if champion_auc is None else f"{champion_auc:.{d}f}")
                    + f" on the same split ({how})"
                )
            else:
                activated = False
                decision = (
                    f"kept model {champion.id} active: its ROC AUC {champion_auc:.{d}f} on the "
                    f"{evaluation.split} beats this model's {challenger_auc:.{d}f} ({how})"
                )
        params = dict(fit.params)
        version_id = save_model_version(
            connection,
            pipeline=fit.pipeline,
            trained_at=now,
            as_of=t,
            horizon_days=horizon,
            params=params,
            metrics=metrics,
            key=key,
        )
        if activated:
            activate(connection, version_id)
            # Scores at T in the same commit: planning and previews never meet an
            # active model that has none.
            from campaign.churn.scoring import store_scores

            store_scores(connection, version_id, fit.pipeline, config, t)
    return TrainReport(
        version_id=version_id,
        activated=activated,
        decision=decision,
        params=params,
        evaluation=evaluation,
        champion_id=None if champion is None else champion.id,
        champion_roc_auc=champion_auc,
        notes=notes,
    )

