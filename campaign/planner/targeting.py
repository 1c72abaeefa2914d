"""Pure: the order a run walks its audience in, the sleeping dogs it keeps out, and the
learning share it randomises outside the audience (docs/planning.md "Targeting").

The planner never reads an uplift model itself (the uplift package sits above it):
the run's use case (:mod:`campaign.app.runs`) scores the campaign's customers with the
campaign's active uplift model, exactly as ``campaign score uplift`` does, and hands
them in as a :class:`Targeting`. Without a model, the targeting falls back to risk and
says so in :attr:`Targeting.note`, which the run reports and stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from campaign.config import CampaignConfig
from campaign.experiments.holdout import holdout_position

RISK, UPLIFT, VALUE = "risk", "uplift", "value"
SLEEPING_DOG = "sleeping dog"
# Inside the learning share, half are treated and half held out: for a given number of
# randomised users an even split estimates a difference of means most precisely.
LEARNING_TREATMENT = 0.5
# The columns a Targeting's scores carry, indexed by the internal user id.
SCORE_COLUMNS = ("uplift", "control", "uplift_segment", "avg_order_value_cents")


@dataclass(frozen=True)
class Targeting:
    """How one run ranks: what it ranks by, the uplift scores, and why (when it differs).

    ``scores`` is indexed by the internal user id with :data:`SCORE_COLUMNS`:
    ``uplift`` and ``control`` in the model's outcome units (revenue: major units of
    the shop's currency), ``uplift_segment`` (persuadable, sure thing, lost cause,
    sleeping dog) and ``avg_order_value_cents`` (the profile's, as of the run).
    ``redeem_rate`` is P(redeem | treated) for ``value``: the share of the campaign's
    treated users whose coupon was redeemed, over its closed windows.
    """

    ranked_by: str = RISK
    scores: pd.DataFrame | None = None
    note: str | None = None
    outcome: str | None = None
    model_version: int | None = None
    redeem_rate: float = 0.0
    minor_digits: int = 2

    @property
    def has_scores(self) -> bool:
        """Whether uplift predictions are available to rank or exclude by."""
        return self.scores is not None


# What the run's use case passes the planner: scores the campaign's customers as of the
# run's as-of time, on the run's own connection (so a dry run reads what it plans with).
TargetingSource = Callable[[Connection, CampaignConfig, datetime], Targeting]


def needs_scores(campaign: CampaignConfig) -> bool:
    """Whether the campaign's audience reads uplift scores (to rank, or to exclude)."""
    audience = campaign.audience
    return audience.rank_by != RISK or audience.excludes_sleeping_dogs


def risk_targeting(campaign: CampaignConfig, reason: str | None = None) -> Targeting:
    """Ranking by risk: what the config asks, or the fallback (``reason`` says why)."""
    if not needs_scores(campaign):
        return Targeting(RISK)
    return Targeting(RISK, note=reason or "no uplift scores were provided to the planner")


def run_targeting(
    connection: Connection, campaign: CampaignConfig, as_of: datetime,
    source: TargetingSource | None,
) -> Targeting:
    """The targeting of one run: from ``source`` when the audience reads uplift scores
    (by risk, saying why, when there is no source)."""
    if not needs_scores(campaign) or source is None:
        return risk_targeting(campaign)
    return source(connection, campaign, as_of)


def expected_profit(
    frame: pd.DataFrame, campaign: CampaignConfig, targeting: Targeting, gross_margin: float,
    percent_off: np.ndarray,
) -> np.ndarray:
    """Expected profit of messaging each user, in minor currency units.

    ``gross_margin x uplift - redeem_rate x percent_off / 100 x avg_order_value``: the
    margin on the revenue the message adds (a revenue model's uplift, major units turned
    into minor ones) minus the expected coupon cost (P(redeem | treated) times the
    discount of the user's offer on an order of the user's average value). Campaigns
    whose enabled variants carry no offer have no coupon cost. ``percent_off`` is the
    offer the coupon policy gives each row's (tier, high value).
    """
    uplift = frame["uplift"].to_numpy(dtype=float) * 10 ** targeting.minor_digits
    has_offer = any(v.offer for v in campaign.variants if v.enabled)
    order = frame["avg_order_value_cents"].to_numpy(dtype=float)
    discount = np.asarray(percent_off, dtype=float) / 100.0 * np.nan_to_num(order)
    cost = targeting.redeem_rate * discount if has_offer else np.zeros(len(frame))
    return np.asarray(gross_margin * uplift - cost, dtype=float)


def rank_frame(frame: pd.DataFrame, campaign: CampaignConfig, targeting: Targeting,
               key: np.ndarray | None = None) -> pd.DataFrame:
    """Pure: ``frame`` ordered for the run, with ``rank_score`` and ``sleeping_dog``.

    ``frame`` is indexed by user id with ``risk`` and ``in_audience`` (the campaign's
    rule); ``key`` is the value to rank by (None: risk, or the uplift when ranking by
    uplift). Audience rows come first, highest key first (unscored users last, ties by
    user id), then the learning candidates outside the audience in the same order.
    Predicted sleeping dogs are marked when the campaign excludes them; outside the
    audience they are dropped (they are never randomised either).
    """
    out = frame.copy()
    if key is None:
        key = (out["uplift"].to_numpy(dtype=float) if targeting.ranked_by == UPLIFT
               else out["risk"].to_numpy(dtype=float))
    out["rank_score"] = key
    dog = np.zeros(len(out), dtype=bool)
    if targeting.has_scores and campaign.audience.excludes_sleeping_dogs:
        dog = (out["uplift_segment"] == SLEEPING_DOG).to_numpy(dtype=bool)
    out["sleeping_dog"] = dog
    inside = out["in_audience"].to_numpy(dtype=bool)
    out = out[inside | ~dog]
    inside = out["in_audience"].to_numpy(dtype=bool)
    score = out["rank_score"].to_numpy(dtype=float)
    missing = np.isnan(score)
    order = np.lexsort((out.index.to_numpy(), -np.nan_to_num(score), missing, ~inside))
    return out.iloc[order]


@dataclass(frozen=True)
class LearningDraw:
    """Which rows of a run are in its learning share, and which of those are treated."""

    chosen: np.ndarray
    treated: np.ndarray


def draw_learning(pool: np.ndarray, share: float, keys: Sequence[str], seed: str
                  ) -> LearningDraw:
    """Pure: the learning share among the ``pool`` rows (eligible, outside the audience).

    Each pool row joins with probability ``share`` and is then treated with probability
    :data:`LEARNING_TREATMENT` (else held out). Both draws are the holdout's stable hash
    (:func:`campaign.experiments.holdout.holdout_position`) of the user's shop id under
    the run's ``seed`` (campaign and slot): independent of everything about the user,
    new for every slot, and the same whenever that slot is planned or previewed, even
    for one user alone (``--user``), whatever else is in the frame.
    """
    pool = np.asarray(pool, dtype=bool)
    chosen = np.zeros(len(pool), dtype=bool)
    treated = np.zeros(len(pool), dtype=bool)
    if share <= 0:
        return LearningDraw(chosen, treated)
    for i in np.flatnonzero(pool).tolist():
        if holdout_position(f"{seed}/learning", str(keys[i])) < share:
            chosen[i] = True
            arm = holdout_position(f"{seed}/learning-arm", str(keys[i]))
            treated[i] = arm < LEARNING_TREATMENT
    return LearningDraw(chosen, treated)


def targeting_line(campaign: CampaignConfig, targeting: Targeting) -> str:
    """The one line a run reports about its order: what it ranked by, and why.

    For example ``ranked by uplift (uplift model version 7, converted), without
    predicted sleeping dogs`` or, before a model exists, ``ranked by risk instead of
    uplift: campaign 'winback' has no uplift model yet (...)``.
    """
    wanted = campaign.audience.rank_by
    line = f"ranked by {targeting.ranked_by}"
    if targeting.ranked_by != wanted:
        line += f" instead of {wanted}"
    if targeting.model_version is not None:
        line += f" (uplift model version {targeting.model_version}, {targeting.outcome})"
    parts = [line]
    if targeting.has_scores and campaign.audience.excludes_sleeping_dogs:
        parts.append("without predicted sleeping dogs")
    elif campaign.audience.excludes_sleeping_dogs:
        parts.append("sleeping dogs not excluded")
    if campaign.audience.learning_share > 0:
        parts.append(f"{campaign.audience.learning_share:.0%} learning share")
    text = ", ".join(parts)
    return f"{text}: {targeting.note}" if targeting.note else text
