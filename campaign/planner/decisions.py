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


def decide(
    connection: Connection,
    config: Config,
    campaign: CampaignConfig,
    as_of: datetime,
    slot: datetime,
    planned_at: datetime,
    only_user: str | None,
) -> pd.DataFrame:
    """Audience with channel, status, skip_reason, variant and offer flag decided."""
    frame = load_audience(
        connection, config, campaign, as_of=as_of, planned_at=planned_at, only_user=only_user
    )
    rules = channel_rules(config, campaign)
    decided = decide_channels(frame, rules)
    frame["channel"] = decided["channel"].to_numpy()
    frame["skip_reason"] = decided["skip_reason"].to_numpy()
    frame["medium"] = frame["channel"].map({r.name: r.medium for r in rules})
    # Thompson sampling over the variants from the arms' attributed outcomes.
    arms = load_bandit_state(connection, campaign.name, config.experiments)
    return decide_treatment(
        frame, campaign, random.Random(f"{campaign.name}/{slot_key(slot)}"), arms
    )


def decide_treatment(
    frame: pd.DataFrame,
    campaign: CampaignConfig,
    rng: random.Random,
    arm_state: BanditState | None = None,
) -> pd.DataFrame:
    """Pure: holdout, variant and the per-run caps over a risk-ordered eligible frame.

    Needs columns external_id and skip_reason (None = eligible), rows highest risk
    first. Adds status, variant, template, offer. The recipient cap walks the list
    in order and cuts everyone (treated or held out) after the ``max_recipients``-th
    treated user, so the control group comes from the same top-risk slice; the coupon
    budget skips offer-carrying users beyond ``coupon_budget`` with ``budget``.
    """
    eligible = frame["skip_reason"].isna().to_numpy()
    held = np.array(
        assign_holdout(campaign.name, frame["external_id"].astype(str), campaign.holdout_share),
        dtype=bool,
    ) & eligible
    treated = eligible & ~held
    status = np.where(treated, MessageStatus.QUEUED.value, MessageStatus.SKIPPED.value)
    status = np.where(held, MessageStatus.HELD_OUT.value, status).astype(object)
    reason = frame["skip_reason"].to_numpy(dtype=object).copy()
    if campaign.max_recipients is not None:
        before = np.cumsum(treated) - treated
        cut = eligible & (before >= campaign.max_recipients)
        status[cut] = MessageStatus.SKIPPED.value
        reason[cut] = SkipReason.RECIPIENT_CAP.value
        treated &= ~cut
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
