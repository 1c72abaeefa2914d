"""Who gets what: audience and channels, holdout, variant, caps, and the products to show.
"""

from __future__ import annotations

import random
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from campaign.config import CampaignConfig, Config, VariantConfig
from campaign.db.models import (
    MessageStatus,
    SkipReason,
)
from campaign.experiments.bandit import BanditState
from campaign.experiments.holdout import assign_holdout
from campaign.experiments.store import load_bandit_state
from campaign.experiments.variants import choose_variant
from campaign.planner import content
from campaign.planner.audience import (
    channel_rules,
    decide_channels,
    load_audience,
)
from campaign.planner.outcomes import slot_key
from campaign.planner.targeting import LEARNING_TREATMENT, Targeting, draw_learning


def decide(
    connection: Connection,
    config: Config,
    campaign: CampaignConfig,
    as_of: datetime,
    slot: datetime,
    planned_at: datetime,
    only_user: str | None,
    targeting: Targeting | None = None,
) -> pd.DataFrame:
    """Audience with channel, status, skip_reason, variant and offer flag decided."""
    frame = load_audience(
        connection, config, campaign, as_of=as_of, planned_at=planned_at, only_user=only_user,
        targeting=targeting,
    )
    rules = channel_rules(config, campaign)
    decided = decide_channels(frame, rules)
    frame["channel"] = decided["channel"].to_numpy()
    # A predicted sleeping dog is kept out before anything else: the targeting decided.
    frame["skip_reason"] = np.where(
        frame["sleeping_dog"].to_numpy(dtype=bool), SkipReason.SLEEPING_DOG.value,
        decided["skip_reason"].to_numpy(dtype=object))
    frame["skip_reason"] = frame["skip_reason"].where(frame["skip_reason"].notna(), None)
    frame["medium"] = frame["channel"].map({r.name: r.medium for r in rules})
    # Thompson sampling over the variants from the arms' attributed outcomes.
    arms = load_bandit_state(connection, campaign.name, config.experiments)
    key = f"{campaign.name}/{slot_key(slot)}"
    return decide_treatment(frame, campaign, random.Random(key), arms, learning_seed=key)


def decide_treatment(
    frame: pd.DataFrame,
    campaign: CampaignConfig,
    rng: random.Random,
    arm_state: BanditState | None = None,
    learning_seed: str = "",
) -> pd.DataFrame:
    """Pure: holdout, variant, the per-run caps and the learning share over an ordered
    eligible frame.

    Needs columns external_id and skip_reason (None = eligible), rows in the run's order
    (highest rank first; ``in_audience`` False rows, the learning candidates, after the
    audience). Adds status, variant, template, offer, p_treatment (each randomised
    row's probability of treatment, NaN for the others) and learning. The recipient cap
    walks the list in order and cuts everyone (treated or held out) after the
    ``max_recipients``-th treated user, so the control group comes from the same
    top-ranked slice; the coupon budget skips offer-carrying users beyond
    ``coupon_budget`` with ``budget``. The learning share (drawn by
    :func:`campaign.planner.targeting.draw_learning` under ``learning_seed``, the run's
    campaign and slot) takes eligible users the audience does not reach (outside the
    rule, or cut by the cap), half treated and half held out; candidates it does not
    take get no row.
    """
    eligible = frame["skip_reason"].isna().to_numpy()
    inside = (frame["in_audience"].to_numpy(dtype=bool) if "in_audience" in frame
              else np.ones(len(frame), dtype=bool))
    held = np.array(
        assign_holdout(campaign.name, frame["external_id"].astype(str), campaign.holdout_share),
        dtype=bool,
    ) & eligible & inside
    treated = eligible & ~held & inside
    status = np.where(treated, MessageStatus.QUEUED.value, MessageStatus.SKIPPED.value)
    status = np.where(held, MessageStatus.HELD_OUT.value, status).astype(object)
    reason = frame["skip_reason"].to_numpy(dtype=object).copy()
    cut = np.zeros(len(frame), dtype=bool)
    if campaign.max_recipients is not None:
        before = np.cumsum(treated) - treated
        cut = eligible & inside & (before >= campaign.max_recipients)
        status[cut] = MessageStatus.SKIPPED.value
        reason[cut] = SkipReason.RECIPIENT_CAP.value
        treated &= ~cut
    p_treatment = np.where(eligible & inside & ~cut, 1.0 - campaign.holdout_share, np.nan)
    share = campaign.audience.learning_share
    draw = draw_learning(eligible & (~inside | cut), share,
                         frame["external_id"].astype(str).tolist(), learning_seed)
    status[draw.chosen] = np.where(draw.treated[draw.chosen], MessageStatus.QUEUED.value,
                                   MessageStatus.HELD_OUT.value)
    reason[draw.chosen] = None
    treated |= draw.treated
    p_treatment[draw.chosen] = LEARNING_TREATMENT
    chosen: list[VariantConfig | None] = [
        choose_variant(campaign.variants, rng, arm_state) if t else None for t in treated
    ]
    offer = np.array([v is not None and v.offer for v in chosen], dtype=bool)
    if campaign.coupon_budget is not None:
        over = offer & (np.cumsum(offer) > campaign.coupon_budget)
        status[over] = MessageStatus.SKIPPED.value
        reason[over] = SkipReason.BUDGET.value
        offer &= ~over
        chosen = [None if o else v for v, o in zip(chosen, over, strict=True)]
    out = frame.copy()
    out["status"] = status
    out["skip_reason"] = pd.Series(reason, index=frame.index, dtype=object)
    out["variant"] = [v.name if v else None for v in chosen]
    out["template"] = [v.template if v else None for v in chosen]
    out["offer"] = offer
    out["allow_repurchase"] = [
        _repurchase(campaign, v) if v else None for v in chosen
    ]
    out["p_treatment"] = p_treatment
    out["learning"] = draw.chosen
    if not inside.all():
        # Candidates outside the audience that the learning share did not take were never
        # considered for a message: no row, as before there was a learning share.
        out = out[inside | draw.chosen].reset_index(drop=True)
    return out


def _repurchase(campaign: CampaignConfig, variant: VariantConfig) -> bool | None:
    return variant.allow_repurchase if variant.allow_repurchase is not None else (
        campaign.allow_repurchase
    )


def recommendations(
    connection: Connection,
    config: Config,
    frame: pd.DataFrame,
    positions: np.ndarray,
    as_of: datetime,
) -> dict[int, list[content.Pick]]:
    """Products per user for the rows that will be rendered, grouped by repurchase setting."""
    groups: dict[bool | None, list[int]] = {}
    users = frame["user_id"].to_numpy()
    settings = frame["allow_repurchase"].to_numpy(dtype=object)
    for i in positions:
        setting = settings[i] if isinstance(settings[i], bool) else None
        groups.setdefault(setting, []).append(int(users[i]))
    return content.recommend(connection, config, groups, as_of)
