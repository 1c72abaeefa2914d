"""Who a run considers, and why each person may not get a message.

Two halves:

* :func:`load_audience` reads everything a run needs in a handful of bulk, grouped
  SQL queries (latest churn scores, users, suppressions, recent message counts per
  channel, this campaign's recent messages, spend) and returns one frame.
* :func:`decide_channels` is a pure function over that frame: for every user the first
  channel (in the campaign's priority order) they are eligible for, or the skip
  reason of the first channel when none is.

Skip reasons are checked in this order, per channel: ``suppressed``, ``no_consent``,
``no_address``, ``invalid_timezone``, ``frequency_capped``, ``cooldown``. The per-run
caps (``recipient_cap``, ``budget``) come later, in :mod:`campaign.planner.run`, after
the holdout, because they depend on who is actually sent to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaign.churn.scoring import latest_scores
from campaign.common.contacts import address_hashes, region_of_locale
from campaign.common.errors import NotFound
from campaign.config import CampaignConfig, Config
from campaign.coupons.policy import choose_offer
from campaign.db.frames import frame_of
from campaign.db.models import (
    EventType,
    Message,
    MessageStatus,
    SkipReason,
    Suppression,
    User,
)
from campaign.planner.targeting import (
    SCORE_COLUMNS,
    VALUE,
    Targeting,
    expected_profit,
    rank_frame,
    risk_targeting,
)
from campaign.profile.segments import latest_segments

# Messages that reached, or may still reach, a person count against caps and cooldowns.
COUNTED_STATUSES = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)
# The cooldown also counts the control group's "would have been sent" rows, so held-out
# users come back exactly as often as treated ones and the comparison stays fair.
COOLDOWN_STATUSES = (*COUNTED_STATUSES, MessageStatus.HELD_OUT)

# The column of ``users`` holding the address and the consent flag, per medium.
ADDRESS_COLUMN = {"email": "email", "sms": "phone"}
CONSENT_COLUMN = {"email": "consent_email", "sms": "consent_sms"}


@dataclass(frozen=True)
class ChannelRule:
    """What eligibility needs to know about one channel of a campaign.

    ``cap`` is the most messages a user may have on this channel (or medium) within
    the frequency window, across campaigns; None means uncapped.
    """

    name: str
    medium: str
    cap: int | None


def channel_rules(config: Config, campaign: CampaignConfig) -> list[ChannelRule]:
    """The campaign's channels in priority order with their media and frequency caps.

    ``delivery.frequency_cap`` is keyed by channel name or by medium; a channel name
    wins. A key that matches neither leaves the channel uncapped.
    """
    caps = config.delivery.frequency_cap
    rules = []
    for name in campaign.channels:
        medium = config.channels[name].medium
        cap = caps.get(name, caps.get(medium))
        rules.append(ChannelRule(name=name, medium=medium, cap=cap))
    return rules


@cache
def is_valid_timezone(name: str) -> bool:
    """Whether ``name`` is a known IANA timezone (cached: a shop has few distinct ones)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def select_audience(scores: pd.DataFrame, campaign: CampaignConfig) -> pd.DataFrame:
    """Pure: the scored users matching the campaign's risk rule, highest risk first.

    ``scores`` is indexed by user_id with columns risk, tier (and optionally
    segment). Returns the matching rows, sorted by risk descending then user_id.
    """
    rule = campaign.audience
    mask = (scores["risk"] >= rule.min_risk) & (scores["risk"] <= rule.max_risk)
    if rule.tiers:
        mask &= scores["tier"].isin(rule.tiers)
    if rule.segments:
        mask &= scores["segment"].isin(rule.segments) if "segment" in scores else False
    chosen = scores.loc[mask]
    order = np.lexsort((chosen.index.to_numpy(), -chosen["risk"].to_numpy()))
    return chosen.iloc[order]


def load_audience(
    connection: Connection,
    config: Config,
    campaign: CampaignConfig,
    *,
    as_of: datetime,
    planned_at: datetime,
    only_user: str | None = None,
    targeting: Targeting | None = None,
) -> pd.DataFrame:
    """Everything eligibility needs about the users a campaign's risk rule selects.

    Read-only. ``as_of`` picks the churn scores and the spend window; ``planned_at``
    (when this run's messages are created) anchors the frequency and cooldown windows.
    ``only_user`` (a shop user id) restricts the audience to that one person.
    ``targeting`` (default: by risk) decides the order; with a learning share, every
    other scored user is loaded too, after the audience, as a learning candidate.

    Returns one row per user in the run's order (:func:`campaign.planner.targeting.
    rank_frame`: by default highest risk first), with columns user_id,
    external_id, email, phone, name, locale, timezone, consent_email, consent_sms,
    risk, tier, reason, segment, spend_cents (purchases in the model's lookback
    window), recent_<channel> (messages on that channel's cap key within the
    frequency window), suppressed_<channel> (bool), cooldown (bool: this campaign
    queued, sent or held out the user within ``cooldown_days``), in_audience (bool:
    the campaign's rule selects the user), the targeting's :data:`SCORE_COLUMNS`
    (NaN without scores), rank_score and sleeping_dog (bool: to be kept out).

    Raises:
        NotFound: there are no churn scores at or before ``as_of`` to target with.
    """
    scores = latest_scores(connection, as_of)
    if scores.empty:
        # Planning now would record the slot as done with nobody in it, and the same
        # slot could not be planned again once scores exist: refuse instead.
        raise NotFound(
            "churn scores",
            f"at or before {as_of:%Y-%m-%d %H:%M} UTC; run 'campaign train' and "
            "'campaign score' first",
        )
    if campaign.audience.segments:
        scores = scores.assign(segment=latest_segments(connection, as_of))
    audience = select_audience(scores, campaign).assign(in_audience=True)
    if campaign.audience.learning_share > 0:
        outside = scores.drop(index=audience.index).assign(in_audience=False)
        audience = pd.concat([audience, outside])
    columns = [
        "user_id", "external_id", "email", "phone", "name", "locale", "timezone",
        "consent_email", "consent_sms", "phone_original",
    ]
    query = select(
        User.id, User.external_id, User.email, User.phone, User.name, User.locale,
        User.timezone, User.consent_email, User.consent_sms, User.phone_original,
    ).where(User.forgotten_at.is_(None))
    if only_user is not None:
        query = query.where(User.external_id == only_user)
    users = frame_of(connection.execute(query).all(), columns).set_index("user_id")
    keep = audience.index.intersection(users.index, sort=False)
    frame = users.loc[keep].join(audience[["risk", "tier", "reason", "in_audience"]])
    if "segment" in audience:
        frame["segment"] = audience["segment"].reindex(frame.index)
    else:
        frame["segment"] = None
    frame["consent_email"] = frame["consent_email"].fillna(False).astype(bool)
    frame["consent_sms"] = frame["consent_sms"].fillna(False).astype(bool)
    frame["spend_cents"] = _spend(connection, config, as_of).reindex(frame.index).fillna(0)
    rules = channel_rules(config, campaign)
    _add_suppressions(connection, frame, rules)
    _add_recent_counts(connection, config, frame, rules, planned_at)
    cooldown_since = planned_at - timedelta(days=campaign.cooldown_days)
    recent = connection.execute(
        select(Message.user_id)
        .where(
            Message.campaign == campaign.name,
            Message.status.in_(COOLDOWN_STATUSES),
            Message.is_test.is_(False),
            Message.created_at > cooldown_since,
            Message.created_at <= planned_at,
        )
        .distinct()
    ).scalars()
    frame["cooldown"] = frame.index.isin(list(recent)) if campaign.cooldown_days else False
    return _ranked(frame, config, campaign, targeting or risk_targeting(campaign)).reset_index()


def _ranked(
    frame: pd.DataFrame, config: Config, campaign: CampaignConfig, targeting: Targeting
) -> pd.DataFrame:
    if targeting.scores is not None:
        frame = frame.join(targeting.scores[list(SCORE_COLUMNS)])
    else:
        frame = frame.assign(uplift=np.nan, control=np.nan, uplift_segment=None,
                             avg_order_value_cents=np.nan)
    key = None
    if targeting.ranked_by == VALUE:
        high = coupon_tier_values(frame).to_numpy(dtype=bool)
        percents: dict[tuple[str, bool], int] = {}
        for tier, flag in zip(frame["tier"].astype(str), high, strict=True):
            if (tier, bool(flag)) not in percents:
                percents[tier, bool(flag)] = choose_offer(
                    tier, bool(flag), campaign.offer, config.shop.currency).percent_off
        percent = np.array([percents[t, bool(h)] for t, h in
                            zip(frame["tier"].astype(str), high, strict=True)], dtype=float)
        key = expected_profit(frame, campaign, targeting, config.shop.gross_margin or 0.0,
                              percent)
    return rank_frame(frame, campaign, targeting, key)


def _spend(connection: Connection, config: Config, as_of: datetime) -> pd.Series:
    from campaign.db.models import Event

    since = as_of - timedelta(days=config.model.lookback_days)
    rows = connection.execute(
        select(Event.user_id, func.sum(Event.amount_cents))
        .where(Event.type == EventType.PURCHASE, Event.ts > since, Event.ts <= as_of)
        .group_by(Event.user_id)
    ).all()
    return pd.Series({user_id: int(total or 0) for user_id, total in rows}, dtype="int64")


def _add_suppressions(
    connection: Connection, frame: pd.DataFrame, rules: Sequence[ChannelRule]
) -> None:
    rows = connection.execute(
        select(Suppression.user_id, Suppression.address_hash, Suppression.channel)
    ).all()
    for rule in rules:
        # A suppression names a channel, its medium, or 'all'.
        scopes = {rule.name, rule.medium, "all"}
        by_user = {user_id for user_id, _, channel in rows if user_id and channel in scopes}
        by_hash = {digest for _, digest, channel in rows if digest and channel in scopes}
        suppressed = frame.index.isin(list(by_user))
        if by_hash:
            # The address as stored, normalized, and (phones) as first imported: rows
            # suppressed before phones were normalized hash the raw form.
            column = ADDRESS_COLUMN.get(rule.medium, "email")
            extra = ["phone_original"] if column == "phone" else []
            hit = [
                bool(address_hashes(values[:-1], region_of_locale(values[-1])) & by_hash)
                for values in zip(
                    *(frame[c] for c in (column, *extra)), frame["locale"], strict=True
                )
            ]
            suppressed |= np.asarray(hit, dtype=bool)
        frame[f"suppressed_{rule.name}"] = suppressed


def _add_recent_counts(
    connection: Connection,
    config: Config,
    frame: pd.DataFrame,
    rules: Sequence[ChannelRule],
    planned_at: datetime,
) -> None:
    since = planned_at - timedelta(days=config.delivery.frequency_window_days)
    rows = connection.execute(
        select(Message.user_id, Message.channel, func.count())
        .where(
            Message.status.in_(COUNTED_STATUSES),
            Message.is_test.is_(False),
            Message.created_at > since,
            Message.created_at <= planned_at,
        )
        .group_by(Message.user_id, Message.channel)
    ).all()
    counts = frame_of(rows, ["user_id", "channel", "n"])
    caps = config.delivery.frequency_cap
    media = {name: channel.medium for name, channel in config.channels.items()}
    for rule in rules:
        # A cap keyed by medium counts every channel of that medium together.
        if rule.name in caps or counts.empty:
            same = counts[counts["channel"] == rule.name]
        else:
            same = counts[counts["channel"].map(media).eq(rule.medium)]
        per_user = same.groupby("user_id")["n"].sum()
        frame[f"recent_{rule.name}"] = per_user.reindex(frame.index).fillna(0).astype("int64")


def decide_channels(frame: pd.DataFrame, rules: Sequence[ChannelRule]) -> pd.DataFrame:
    """Pure: each user's channel, or the reason they get none.

    ``frame`` has the columns of :func:`load_audience`. Returns a frame on the same
    index with ``channel`` (the first eligible channel, or the first channel when none
    is) and ``skip_reason`` (None when eligible, else the first channel's reason).
    """
    n = len(frame)
    valid_tz = (
        frame["timezone"].map(lambda tz: not isinstance(tz, str) or not tz or is_valid_timezone(tz))
        .to_numpy(dtype=bool)
        if n
        else np.ones(0, dtype=bool)
    )
    cooldown = frame["cooldown"].to_numpy(dtype=bool)
    reasons = []
    for rule in rules:
        address = frame[ADDRESS_COLUMN.get(rule.medium, "email")]
        has_address = (address.notna() & address.astype(str).str.strip().ne("")).to_numpy()
        consent = frame[CONSENT_COLUMN.get(rule.medium, "consent_email")].to_numpy(dtype=bool)
        capped = (
            frame[f"recent_{rule.name}"].to_numpy() >= rule.cap
            if rule.cap is not None
            else np.zeros(n, dtype=bool)
        )
        reason = np.select(
            [
                frame[f"suppressed_{rule.name}"].to_numpy(dtype=bool),
                ~consent,
                ~has_address,
                ~valid_tz,
                capped,
                cooldown,
            ],
            [
                SkipReason.SUPPRESSED.value,
                SkipReason.NO_CONSENT.value,
                SkipReason.NO_ADDRESS.value,
                SkipReason.INVALID_TIMEZONE.value,
                SkipReason.FREQUENCY_CAPPED.value,
                SkipReason.COOLDOWN.value,
            ],
            default="",
        )
        reasons.append(reason)
    channel = np.full(n, rules[0].name, dtype=object)
    skip = np.array(reasons[0], dtype=object) if reasons else np.full(n, "", dtype=object)
    decided = np.zeros(n, dtype=bool)
    for rule, reason in zip(rules, reasons, strict=True):
        eligible = (reason == "") & ~decided
        channel[eligible] = rule.name
        skip[eligible] = ""
        decided |= eligible
    skip_reason = pd.Series([s or None for s in skip], index=frame.index, dtype=object)
    return pd.DataFrame({"channel": channel, "skip_reason": skip_reason}, index=frame.index)


def coupon_tier_values(frame: pd.DataFrame, share: float = 0.2) -> pd.Series:
    """Pure: whether each user is a high-value customer (top ``share`` by spend, spend > 0).

    The threshold is taken over the audience (``in_audience`` rows, when the column is
    there), so adding a learning share never changes who in the audience is high value.
    """
    spend = frame["spend_cents"]
    if spend.empty:
        return pd.Series([], dtype=bool, index=frame.index)
    inside = spend[frame["in_audience"].astype(bool)] if "in_audience" in frame else spend
    threshold = (inside if not inside.empty else spend).quantile(1 - share)
    return (spend >= threshold) & (spend > 0)


def counts_of(
    statuses: pd.Series, reasons: pd.Series, learning: pd.Series | None = None
) -> Mapping[str, int]:
    """``{"queued": n, "held_out": n, "skipped": n, "skipped.<reason>": n}`` of a run,
    plus ``learning.<status>`` for the rows of the learning share (``learning`` True)."""
    counts: dict[str, int] = {str(k): int(v) for k, v in statuses.value_counts().items()}
    for reason, n in reasons.dropna().value_counts().items():
        counts[f"skipped.{reason}"] = int(n)
    if learning is not None:
        for status, n in statuses[learning.astype(bool).to_numpy()].value_counts().items():
            counts[f"learning.{status}"] = int(n)
    return counts
