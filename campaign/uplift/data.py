"""I/O: the experiment data of a campaign, one row per randomised user. Read-only.

Two sources, in one frame:

* **product runs**: every ``messages`` row the planner randomised (intent-to-treat:
  treatment = assigned a variant whether or not the send succeeded, control = held
  out; rows skipped before the split never were randomised and are left out), whose
  attribution window has closed. Its probability of treatment is one minus the run's
  ``campaign_runs.holdout_share`` (the share in force when it was planned; runs
  planned before it was recorded fall back to the campaign's configured share), or the
  row's own ``messages.p_treatment`` where the run recorded it (the learning share's
  users, randomised half and half outside the audience, are rows too). The
  outcome is :func:`campaign.measurement.attribution.load_outcomes`' (converted,
  revenue in the window) plus ``visited``: any event of the user in the window.
* **imported experiments** (``campaign import experiments``): the shop's own
  assignment and outcome. Their probability of treatment is the campaign's treated
  share among its imported rows (0.5 for a 50/50 test).

Features are the user's profile as of the planning time (the run's ``as_of``, an
import's ``assigned_at``), recomputed from events strictly before it by
:func:`campaign.profile.profile_frame`: nothing the message could have caused is ever
an input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaign.config import AttributionConfig
from campaign.db.models import CampaignRun, Event, ExperimentAssignment, Message, User
from campaign.measurement.attribution import (
    HOLDOUT,
    LEARNING_HOLDOUT,
    LEARNING_TREATMENT,
    TREATMENT,
    load_outcomes,
)
from campaign.profile import profile_frame
from campaign.profile.features import NEVER_DAYS, fill_missing

# The profile columns the uplift model reads: few, and each one a marketer can read.
FEATURE_COLUMNS: tuple[str, ...] = (
    "days_since_last_purchase",
    "days_since_last_event",
    "tenure_days",
    "orders_total",
    "orders_365d",
    "spend_total_cents",
    "spend_365d_cents",
    "avg_order_value_cents",
    "events_90d",
    "messages_received",
    "coupon_order_share",
)
OUTCOMES = ("converted", "visited", "revenue")
RUN, IMPORTED = "run", "import"
FRAME_COLUMNS = (
    "user_id", "campaign", "source", "as_of", "treatment", "p_treatment",
    "converted", "visited", "revenue_cents",
)

Progress = Callable[[int], None]
_ID_BATCH = 5_000


def run_rows(
    connection: Connection,
    attribution: AttributionConfig,
    campaign: str,
    *,
    horizon_days: int,
    now: datetime,
    configured_share: float | None,
) -> pd.DataFrame:
    """The randomised, closed-window rows of ``campaign``'s runs, :data:`FRAME_COLUMNS`."""
    outcomes = load_outcomes(
        connection, attribution, horizon_days=horizon_days, now=now, campaign=campaign
    )
    randomised = (TREATMENT, HOLDOUT, LEARNING_TREATMENT, LEARNING_HOLDOUT)
    rows = outcomes[outcomes["group"].isin(randomised) & outcomes["window_closed"]]
    if rows.empty:
        return pd.DataFrame(columns=list(FRAME_COLUMNS))
    runs = pd.DataFrame.from_records(
        connection.execute(
            select(CampaignRun.id, CampaignRun.as_of, CampaignRun.holdout_share).where(
                CampaignRun.campaign == campaign
            )
        ).all(),
        columns=["run_id", "as_of", "holdout_share"],
    ).set_index("run_id")
    share = rows["run_id"].map(runs["holdout_share"]).astype(float)
    if configured_share is not None:
        share = share.fillna(configured_share)
    # Each row's own probability where the run recorded it (the learning share's is not
    # the run's), else the run's holdout share.
    p_treatment = pd.to_numeric(rows["p_treatment"], errors="coerce").astype(float)
    p_treatment = p_treatment.fillna(1.0 - share)
    out = pd.DataFrame({
        "user_id": rows["user_id"].astype("int64"),
        "campaign": campaign,
        "source": RUN,
        "as_of": pd.to_datetime(rows["run_id"].map(runs["as_of"]), utc=True),
        "treatment": rows["group"].isin((TREATMENT, LEARNING_TREATMENT)).astype(bool),
        "p_treatment": p_treatment,
        "converted": rows["converted"].astype(bool),
        "revenue_cents": rows["revenue_cents"].astype("int64"),
    })
    out["visited"] = _visited(
        connection, campaign, out["user_id"], rows["start"], rows["window_end"]
    )
    return out[list(FRAME_COLUMNS)].reset_index(drop=True)


def _visited(
    connection: Connection, campaign: str, user_ids: pd.Series, start: pd.Series,
    end: pd.Series,
) -> np.ndarray:
    """Whether each user has any event in ``(start, end]`` (a visit to the shop)."""
    if user_ids.empty:
        return np.zeros(0, dtype=bool)
    since = pd.to_datetime(start, utc=True).min().to_pydatetime()
    until = pd.to_datetime(end, utc=True).max().to_pydatetime()
    events = pd.DataFrame.from_records(
        connection.execute(
            select(Event.user_id, Event.ts).where(
                Event.ts > since, Event.ts <= until,
                Event.user_id.in_(select(Message.user_id).where(Message.campaign == campaign)),
            )
        ).all(),
        columns=["user_id", "ts"],
    )
    windows = pd.DataFrame({
        "row": np.arange(len(user_ids)), "user_id": user_ids.to_numpy(),
        "start": pd.to_datetime(start, utc=True).to_numpy(),
        "end": pd.to_datetime(end, utc=True).to_numpy(),
    })
    if events.empty:
        return np.zeros(len(user_ids), dtype=bool)
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    joined = windows.merge(events, on="user_id")
    inside = joined[(joined["ts"] > joined["start"]) & (joined["ts"] <= joined["end"])]
    hit = np.zeros(len(user_ids), dtype=bool)
    hit[inside["row"].unique()] = True
    return hit


def imported_rows(connection: Connection, campaign: str) -> pd.DataFrame:
    """The imported experiment rows of ``campaign``, :data:`FRAME_COLUMNS`."""
    e = ExperimentAssignment
    rows = pd.DataFrame.from_records(
        connection.execute(
            select(e.user_id, e.group, e.assigned_at, e.converted, e.revenue_cents, e.visited)
            .where(e.campaign == campaign).order_by(e.id)
        ).all(),
        columns=["user_id", "group", "assigned_at", "converted", "revenue_cents", "visited"],
    )
    if rows.empty:
        return pd.DataFrame(columns=list(FRAME_COLUMNS))
    treated = (rows["group"] == "treatment").to_numpy()
    out = pd.DataFrame({
        "user_id": rows["user_id"].astype("int64"),
        "campaign": campaign,
        "source": IMPORTED,
        "as_of": pd.to_datetime(rows["assigned_at"], utc=True),
        "treatment": treated,
        "p_treatment": float(treated.mean()),
        "converted": rows["converted"].astype(bool),
        "visited": rows["visited"].astype("boolean").fillna(False).astype(bool),
        "revenue_cents": pd.to_numeric(rows["revenue_cents"]).fillna(0).astype("int64"),
    })
    return out[list(FRAME_COLUMNS)]


def features_as_of(
    connection: Connection, rows: pd.DataFrame, progress: Progress | None = None
) -> pd.DataFrame:
    """:data:`FEATURE_COLUMNS` of each row's user as of the row's ``as_of``, in order.

    One profile per distinct ``as_of``; a user without any event before it gets the
    values of someone never seen (no orders, recency :data:`NEVER_DAYS`).
    """
    parts = []
    for moment, group in rows.groupby("as_of", sort=True):
        profile = profile_frame(connection, pd.Timestamp(moment).to_pydatetime())
        picked = profile.reindex(group["user_id"].to_numpy())[list(FEATURE_COLUMNS)]
        parts.append(pd.DataFrame(picked.to_numpy(), index=group.index,
                                  columns=list(FEATURE_COLUMNS)))
        if progress:
            progress(1)
    if not parts:
        return pd.DataFrame(columns=list(FEATURE_COLUMNS), dtype=float)
    features = pd.concat(parts).loc[rows.index].astype(float)
    return fill_unseen(features)


def fill_unseen(features: pd.DataFrame) -> pd.DataFrame:
    """NaN → the feature's documented fill; recency of someone never seen →
    :data:`NEVER_DAYS`; counts and amounts → 0."""
    out = features.copy()
    for name in ("days_since_last_event", "days_since_last_purchase"):
        if name in out:
            out[name] = out[name].fillna(NEVER_DAYS)
    out = fill_missing(out)
    return out.fillna(0.0)


def as_of_count(connection: Connection, campaign: str) -> int:
    """Distinct planning times of ``campaign``'s rows (a progress bar's total)."""
    runs = connection.execute(
        select(func.count(func.distinct(CampaignRun.as_of))).where(
            CampaignRun.campaign == campaign)
    ).scalar_one()
    imported = connection.execute(
        select(func.count(func.distinct(ExperimentAssignment.assigned_at))).where(
            ExperimentAssignment.campaign == campaign)
    ).scalar_one()
    return int(runs) + int(imported)


def training_frame(
    connection: Connection,
    attribution: AttributionConfig,
    campaign: str,
    *,
    horizon_days: int,
    now: datetime,
    configured_share: float | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The experiment data of ``campaign``: product runs and imported experiments.

    Columns: :data:`FRAME_COLUMNS` (``treatment`` bool, ``p_treatment`` the row's own
    probability of treatment, ``as_of`` UTC, ``revenue_cents`` int) then
    :data:`FEATURE_COLUMNS` (floats, as of ``as_of``), then ``attributes`` (the user's
    imported attributes, a dict). ``configured_share`` is the
    campaign's holdout share, for runs planned before shares were recorded.
    """
    parts = [frame for frame in (
        run_rows(connection, attribution, campaign, horizon_days=horizon_days, now=now,
                 configured_share=configured_share),
        imported_rows(connection, campaign),
    ) if not frame.empty]
    if not parts:
        return pd.DataFrame(columns=[*FRAME_COLUMNS, *FEATURE_COLUMNS, "attributes"])
    rows = pd.concat(parts, ignore_index=True)
    features = features_as_of(connection, rows, progress)
    frame = pd.concat([rows, features.reset_index(drop=True)], axis=1)
    attributes = user_attributes(connection, rows["user_id"].unique().tolist())
    frame["attributes"] = [attributes.get(int(u), {}) for u in rows["user_id"]]
    return frame


def user_attributes(connection: Connection, user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``users.attributes`` (the extra columns of users.csv) of ``user_ids``, by id.

    These are the values imported last, not as of the planning time: the shop's
    attributes are kept without history.
    """
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(user_ids), _ID_BATCH):
        batch = user_ids[start:start + _ID_BATCH]
        for user_id, attributes in connection.execute(
            select(User.id, User.attributes).where(User.id.in_(batch))
        ):
            out[int(user_id)] = dict(attributes or {})
    return out


def campaigns_with_data(connection: Connection, configured: Mapping[str, float]) -> list[str]:
    """Campaigns that have imported experiments or appear in ``configured``, sorted."""
    imported = {name for (name,) in connection.execute(
        select(ExperimentAssignment.campaign).distinct())}
    return sorted(imported | set(configured))

