"""One campaign run: audience → holdout → variant → caps → products → coupon → render →
outbox rows, in one transaction.

Every user the campaign's risk rule selects gets exactly one ``messages`` row:
``held_out`` (control group), ``skipped`` with a ``skip_reason``, or ``queued``.
Planning the same (campaign, slot) twice plans nothing new: the ``campaign_runs``
row is unique per (campaign, slot) and every message carries the unique idempotency
key ``<campaign>/<slot>/<user_id>/<channel>``; an ``IntegrityError`` on either means
"already planned", not a failure. A dry run (and :mod:`campaign.planner.preview`) is
the same code with every write switched off.
"""

from __future__ import annotations

import gc
import logging
import random
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from campaign.common.errors import CampaignError, TemplateError
from campaign.common.progress import set_total
from campaign.config import CampaignConfig, Config, VariantConfig
from campaign.coupons.store import RESERVE_ATTEMPTS
from campaign.db import pauses
from campaign.db.models import (
    CampaignRun,
    Message,
    MessageStatus,
    RunStatus,
    SkipReason,
)
from campaign.db.queries import unsubscribe_key
from campaign.experiments.bandit import BanditState
from campaign.experiments.holdout import assign_holdout
from campaign.experiments.store import load_bandit_state
from campaign.experiments.variants import choose_variant, enabled_variants
from campaign.planner import content
from campaign.planner import rows as bulk
from campaign.planner.audience import (
    channel_rules,
    counts_of,
    coupon_tier_values,
    decide_channels,
    load_audience,
)

Progress = Callable[[int], None]
log = logging.getLogger(__name__)

# Outcomes of plan_run, as RunReport.outcome.
PLANNED = "planned"
ALREADY_PLANNED = "already_planned"
PAUSED = "paused"
DRY_RUN = "dry_run"
TEST = "test"

TEST_SUFFIX = ":test"
# Queued messages rendered and written per chunk: bounds a run's memory for the texts.
WRITE_CHUNK = 2_000


@dataclass
class PlannedMessage:
    """One rendered message of a run (kept for dry runs, previews and test sends)."""

    user_id: int
    external_id: str
    name: str | None
    channel: str
    medium: str
    variant: str
    template: str
    locale: str
    address: str | None
    subject: str | None
    html: str | None
    text: str
    coupon_code: str | None
    percent_off: int | None
    products: list[dict[str, Any]]


@dataclass
class RunReport:
    """What one run decided.

    ``decisions`` has one row per user considered, highest risk first, with columns
    user_id, external_id, risk, tier, channel, status, skip_reason, variant,
    coupon_code, percent_off, products (shop product ids), subject, last_error.
    ``messages`` holds rendered messages only for dry runs and test sends (at most
    ``render_limit`` of them). ``counts`` is what is stored in ``campaign_runs.counts``.
    """

    campaign: str
    slot: datetime
    as_of: datetime
    outcome: str
    run_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    messages: list[PlannedMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slot_key(slot: datetime) -> str:
    """The slot as it appears in idempotency keys: ``20261101T000000Z`` (UTC)."""
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def idempotency_key(campaign: str, slot: datetime, user_id: int, channel: str) -> str:
    """The unique key of one (campaign, slot, user, channel) message."""
    return f"{campaign}/{slot_key(slot)}/{user_id}/{channel}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def plan_run(
    engine: Engine,
    config: Config,
    campaign_name: str,
    *,
    as_of: datetime,
    slot: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
    only_user: str | None = None,
    render_limit: int | None = None,
    code_rng: random.Random | None = None,
) -> RunReport:
    """Plan one run of ``campaign_name`` for ``slot`` and write it in one transaction.

    ``as_of`` picks the churn scores and recommendations; ``now`` (the clock, default:
    ``slot``) stamps ``created_at`` and anchors the frequency-cap and cooldown windows
    and ``expires_at`` (``created_at + delivery.message_expiry_hours``). With
    ``dry_run`` nothing is written (not even the run row, no coupon is reserved) and
    the rendered messages come back in the report; ``only_user`` (shop id) and
    ``render_limit`` narrow a dry run for previews. Coupon codes are drawn from
    ``code_rng`` (default: :class:`secrets.SystemRandom`; a seeded generator in
    tests); a drawn code that is already taken is drawn again, never reused.

    Raises:
        NotFound: unknown campaign.
        TemplateError: a template of an enabled variant is broken (nothing planned).
        ConfigError: the campaign has no enabled variant.
    """
    with _long_lived_frozen():
        return _plan_run(
            engine, config, campaign_name, as_of=as_of, slot=slot, dry_run=dry_run,
            progress=progress, now=now, only_user=only_user, render_limit=render_limit,
            code_rng=code_rng,
        )


def _plan_run(
    engine: Engine,
    config: Config,
    campaign_name: str,
    *,
    as_of: datetime,
    slot: datetime,
    dry_run: bool,
    progress: Progress | None,
    now: Callable[[], datetime] | None,
    only_user: str | None,
    render_limit: int | None,
    code_rng: random.Random | None,
) -> RunReport:
    campaign = config.campaign(campaign_name)
    as_of, slot = _aware(as_of), _aware(slot)
    planned_at = _aware(now()) if now is not None else slot
    if campaign.paused:
        return RunReport(
            campaign.name, slot, as_of, PAUSED,
            notes=[f"campaign {campaign.name!r} is paused: nothing planned"],
        )
    # The operator's switch in the database (campaign pause NAME / --all), no restart.
    with engine.connect() as connection:
        if pauses.is_paused(connection, campaign.name):
            return RunReport(
                campaign.name, slot, as_of, PAUSED,
                notes=[f"campaign {campaign.name!r} is paused (campaign resume): nothing planned"],
            )
    variants = enabled_variants(campaign.variants)
    if not variants:
        raise CampaignError(f"campaign {campaign.name!r} has no enabled variant")
    renderer = content.Renderer(config, _unsubscribe_key(engine, config, create=not dry_run))
    renderer.check_templates(sorted({v.template for v in variants}))
    if dry_run:
        with _read_only(engine) as connection:
            frame = _decide(connection, config, campaign, as_of, slot, planned_at, only_user)
            keep = _finish(
                connection, config, campaign, frame, renderer, as_of, planned_at,
                reserve=False, progress=progress, render_limit=render_limit,
                code_rng=code_rng,
            )
        return RunReport(
            campaign.name, slot, as_of, DRY_RUN,
            counts=dict(counts_of(frame["status"], frame["skip_reason"])),
            decisions=_public(frame), messages=keep, notes=renderer.broken_notes(),
        )
    try:
        with engine.begin() as connection:
            run_id = _claim_run(connection, campaign.name, slot, as_of, planned_at)
            if run_id is None:
                return _already(campaign.name, slot, as_of)
            frame = _decide(connection, config, campaign, as_of, slot, planned_at, only_user)
            _finish(
                connection, config, campaign, frame, renderer, as_of, planned_at,
                reserve=True, progress=progress, run_id=run_id, slot=slot,
                code_rng=code_rng,
            )
            counts = dict(counts_of(frame["status"], frame["skip_reason"]))
            connection.execute(
                update(CampaignRun)
                .where(CampaignRun.id == run_id)
                .values(status=RunStatus.DONE, counts=counts, finished_at=planned_at, error=None)
            )
    except IntegrityError as exc:
        # Another process planned this slot first (its run row or a message key); coupon
        # code collisions are drawn again in _reserve_coupons and never end up here.
        if _slot_taken(engine, campaign.name, slot):
            return _already(campaign.name, slot, as_of)
        _record_failure(engine, campaign.name, slot, as_of, planned_at, exc)
        raise
    except Exception as exc:
        _record_failure(engine, campaign.name, slot, as_of, planned_at, exc)
        raise
    return RunReport(
        campaign.name, slot, as_of, PLANNED, run_id=run_id, counts=counts,
        decisions=_public(frame), notes=renderer.broken_notes(),
    )


def _already(campaign: str, slot: datetime, as_of: datetime) -> RunReport:
    return RunReport(
        campaign, slot, as_of, ALREADY_PLANNED,
        notes=[f"{campaign} at {slot.isoformat()} was already planned: nothing new"],
    )


@contextmanager
def _read_only(engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction is always rolled back; read-only on PostgreSQL."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            yield connection
        finally:
            connection.rollback()


def _claim_run(
    connection: Connection, campaign: str, slot: datetime, as_of: datetime, started: datetime
) -> int | None:
    """Insert the run row; None when the slot is already planned.

    A run recorded as failed (its transaction rolled back, so it planned nothing) is
    taken over and planned again.
    """
    existing = connection.execute(
        select(CampaignRun.id, CampaignRun.status).where(
            CampaignRun.campaign == campaign, CampaignRun.slot == slot
        )
    ).first()
    if existing is not None:
        if existing.status != RunStatus.FAILED:
            return None
        connection.execute(
            update(CampaignRun)
            .where(CampaignRun.id == existing.id)
            .values(status=RunStatus.RUNNING, as_of=as_of, started_at=started, error=None)
        )
        return int(existing.id)
    return int(
        connection.execute(
            insert(CampaignRun)
            .values(
                campaign=campaign, slot=slot, as_of=as_of, status=RunStatus.RUNNING,
                counts={}, started_at=started,
            )
            .returning(CampaignRun.id)
        ).scalar_one()
    )


def _slot_taken(engine: Engine, campaign: str, slot: datetime) -> bool:
    """Whether a run of (campaign, slot) that did not fail is committed."""
    with engine.connect() as connection:
        status = connection.execute(
            select(CampaignRun.status).where(
                CampaignRun.campaign == campaign, CampaignRun.slot == slot
            )
        ).scalar()
    return status is not None and status != RunStatus.FAILED


def _record_failure(
    engine: Engine, campaign: str, slot: datetime, as_of: datetime, at: datetime, exc: Exception
) -> None:
    """Leave a ``failed`` run row with the error, so operators see it; never raises."""
    try:
        with engine.begin() as connection:
            existing = connection.execute(
                select(CampaignRun.id).where(
                    CampaignRun.campaign == campaign, CampaignRun.slot == slot
                )
            ).scalar()
            values = {"status": RunStatus.FAILED, "error": str(exc)[:2000], "finished_at": at}
            if existing is None:
                connection.execute(
                    insert(CampaignRun).values(
                        campaign=campaign, slot=slot, as_of=as_of, counts={}, started_at=at,
                        **values,
                    )
                )
            else:
                connection.execute(
                    update(CampaignRun).where(CampaignRun.id == existing).values(**values)
                )
    except Exception:  # noqa: BLE001 - the original error is what the caller needs
        log.warning("campaign.run.failure_not_recorded campaign=%s slot=%s", campaign, slot,
                    exc_info=True)


def _decide(
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


def _finish(
    connection: Connection,
    config: Config,
    campaign: CampaignConfig,
    frame: pd.DataFrame,
    renderer: content.Renderer,
    as_of: datetime,
    planned_at: datetime,
    *,
    reserve: bool,
    progress: Progress | None,
    render_limit: int | None = None,
    run_id: int | None = None,
    slot: datetime | None = None,
    code_rng: random.Random | None = None,
) -> list[PlannedMessage]:
    """Products, offers and rendering for queued rows, then (with ``reserve``) the writes.

    Updates ``frame`` in place (status/skip_reason for render errors, subject,
    coupon_code, percent_off, products, last_error) and returns the rendered messages
    of a dry run. Coupon codes come from ``code_rng`` (default: the OS generator).
    """
    for name in ("subject", "coupon_code", "percent_off", "products", "last_error"):
        frame[name] = None
    queued = np.flatnonzero(frame["status"].to_numpy() == MessageStatus.QUEUED.value)
    if render_limit is not None:
        queued = queued[:render_limit]
    if progress is not None:
        set_total(progress, len(frame))
        progress(len(frame) - len(queued))
    # One recommender fit and one call, for the users who will get a message only.
    picks = _recommendations(connection, config, frame, queued, as_of)
    high_value = coupon_tier_values(frame).to_numpy(dtype=bool).tolist()
    codes = content.CodeDrawer(
        code_rng if code_rng is not None else secrets.SystemRandom(), campaign.offer.code_prefix
    )
    rendered: dict[int, content.Rendered] = {}
    coupons: dict[int, content.CouponOffer] = {}
    kept: list[PlannedMessage] = []
    status = frame["status"].to_numpy(dtype=object).copy()
    reason = frame["skip_reason"].to_numpy(dtype=object).copy()
    last_error = np.full(len(frame), None, dtype=object)
    cols = {c: frame[c].astype(object).tolist() for c in (
        "user_id", "external_id", "name", "email", "phone", "locale", "timezone", "channel",
        "medium", "variant", "template", "tier", "risk",
    )}
    offer = frame["offer"].to_numpy(dtype=bool).tolist()
    default_locale = config.shop.default_locale

    def new_coupon(i: int) -> content.CouponOffer | None:
        if not offer[i]:
            return None
        return content.make_coupon(
            campaign.offer, str(cols["tier"][i]), bool(high_value[i]), codes, planned_at,
            config.shop.currency,
        )

    def render_row(i: int, coupon: content.CouponOffer | None) -> content.Rendered:
        return renderer.render(
            template=str(cols["template"][i]),
            medium=str(cols["medium"][i]),
            locale=str(cols["locale"][i] or default_locale),
            user={k: cols[k][i] for k in ("external_id", "name", "email", "timezone")},
            channel=str(cols["channel"][i]),
            campaign=campaign.name,
            variant=str(cols["variant"][i]),
            products=picks.get(int(cols["user_id"][i]), []),
            coupon=coupon,
        )

    def redraw(i: int) -> None:
        # A drawn code collided: a new code, and the message re-rendered with it.
        coupon = new_coupon(i)
        assert coupon is not None
        rendered[i] = render_row(i, coupon)
        coupons[i] = coupon

    outbox = None
    if reserve:
        assert run_id is not None and slot is not None
        outbox = _Outbox(connection, campaign, frame, picks, run_id, slot, planned_at,
                         config.delivery.message_expiry_hours)
    subjects: dict[int, str | None] = {}
    # The audience, picks and views live until the end of the run: out of the
    # collector's way too (plan_run unfreezes everything when it ends).
    gc.freeze()
    step = 0
    positions = queued.tolist()
    for start in range(0, len(positions), WRITE_CHUNK):
        done: list[int] = []
        for i in positions[start : start + WRITE_CHUNK]:
            coupon = new_coupon(i)
            try:
                result = render_row(i, coupon)
            except TemplateError as exc:
                status[i] = MessageStatus.SKIPPED.value
                reason[i] = SkipReason.TEMPLATE_ERROR.value
                last_error[i] = str(exc)
            else:
                rendered[i] = result
                done.append(i)
                if coupon is not None:
                    coupons[i] = coupon
                if not reserve:
                    user_id = int(cols["user_id"][i])
                    kept.append(
                        PlannedMessage(
                            user_id=user_id, external_id=str(cols["external_id"][i]),
                            name=cols["name"][i], channel=str(cols["channel"][i]),
                            medium=str(cols["medium"][i]), variant=str(cols["variant"][i]),
                            template=str(cols["template"][i]),
                            locale=str(cols["locale"][i] or default_locale),
                            address=cols["email" if cols["medium"][i] == "email" else "phone"][i],
                            subject=result.subject, html=result.html, text=result.text,
                            coupon_code=coupon.code if coupon else None,
                            percent_off=coupon.percent_off if coupon else None,
                            products=[p.view for p in picks.get(user_id, [])],
                        )
                    )
            step += 1
            if progress is not None and step % 500 == 0:
                progress(500)
        if outbox is not None:
            # Written as they are rendered, so a run never holds all its texts at once.
            outbox.write_rendered(done, rendered, coupons, redraw)
            for i in done:
                subjects[i] = rendered.pop(i).subject
    if progress is not None and step % 500:
        progress(step % 500)
    subjects.update((i, message.subject) for i, message in rendered.items())
    frame["status"] = status
    frame["skip_reason"] = reason
    frame["last_error"] = last_error
    if outbox is not None:
        outbox.write_rest(subjects)
    frame["subject"] = [subjects.get(i) for i in range(len(frame))]
    frame["coupon_code"] = [coupons[i].code if i in coupons else None for i in range(len(frame))]
    frame["percent_off"] = [
        coupons[i].percent_off if i in coupons else None for i in range(len(frame))
    ]
    frame["products"] = [
        [p.product_external_id for p in picks.get(int(u), [])] if i in subjects else []
        for i, u in enumerate(cols["user_id"])
    ]
    return kept


@contextmanager
def _long_lived_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that exist on entry.

    A run allocates millions of objects (result rows, frames, picks, messages), which
    set off full collections, and each of those would walk every object the process
    already holds (the imported libraries alone are hundreds of thousands) again.
    :func:`gc.freeze` moves those to the permanent generation for the run and
    :func:`gc.unfreeze` hands them back; objects created inside are collected as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _recommendations(
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


class _Outbox:
    """Writes a run's ``messages`` (and their coupons) in bulk, chunk by chunk.

    Rendered (queued) messages are written as each chunk is rendered, in the run's
    order, and their coupons right after; :meth:`write_rest` then writes the rows of
    everyone else (held out, skipped) in frame order. All in the run's transaction.
    """

    def __init__(
        self,
        connection: Connection,
        campaign: CampaignConfig,
        frame: pd.DataFrame,
        picks: Mapping[int, list[content.Pick]],
        run_id: int,
        slot: datetime,
        planned_at: datetime,
        expiry_hours: float,
    ) -> None:
        self.connection = connection
        self.campaign = campaign
        self.frame = frame
        self.picks = picks
        self.run_id = run_id
        self.planned_at = planned_at
        self.at = bulk.db_time(connection, planned_at)
        self.expires = bulk.db_time(connection, planned_at + timedelta(hours=expiry_hours))
        self.no = bulk.db_bool(connection, False)
        # idempotency_key(campaign, slot, user_id, channel), formatted once per run.
        self.key_prefix = f"{campaign.name}/{slot_key(slot)}/"
        self.user_ids = [int(u) for u in frame["user_id"].tolist()]
        self.channels = frame["channel"].tolist()
        self.variants = frame["variant"].tolist()
        self.templates = frame["template"].tolist()
        self.last_id = 0

    def write_rendered(
        self,
        positions: Sequence[int],
        rendered: dict[int, content.Rendered],
        coupons: dict[int, content.CouponOffer],
        redraw: Callable[[int], None],
    ) -> None:
        """Insert the queued messages at ``positions`` (frame rows), then their coupons.

        A coupon code that collides with a stored one (or another of the run) is drawn
        again (``redraw`` re-renders that message) and its message row updated, until
        every code is new; a code is never reused.

        Raises:
            CampaignError: still colliding after ``RESERVE_ATTEMPTS`` draws.
        """
        if not positions:
            return
        queued = MessageStatus.QUEUED.value
        records = []
        for i in positions:
            message = rendered[i]
            user_id = self.user_ids[i]
            coupon = coupons.get(i)
            records.append((
                self.run_id, user_id, self.campaign.name, self.channels[i], self.variants[i],
                self.templates[i], message.subject, message.html or message.text, message.text,
                content.stored_products_json(self.picks.get(user_id, ())),
                coupon.code if coupon else None, None, self.no,
                f"{self.key_prefix}{user_id}/{self.channels[i]}", queued, None, 0,
                self.at, self.expires, None, self.at, self.at,
            ))
        bulk.insert_rows(self.connection, "messages", bulk.MESSAGE_COLUMNS, records)
        # One message per user per run: read the new ids back in one query rather than
        # RETURNING, which SQLite can only honour row by row in parameter order.
        ids = bulk.new_message_ids(self.connection, self.run_id, self.last_id)
        self.last_id = max(ids.values(), default=self.last_id)
        with_coupon = [i for i in positions if i in coupons]
        if with_coupon:
            self._reserve_coupons(with_coupon, ids, rendered, coupons, redraw)

    def write_rest(self, written: Mapping[int, Any]) -> None:
        """Insert the rows of every frame row not in ``written`` (held out, skipped)."""
        held = MessageStatus.HELD_OUT.value
        columns = zip(
            self.frame["status"].tolist(), self.frame["skip_reason"].tolist(),
            self.frame["last_error"].tolist(), strict=True,
        )
        records = []
        for i, (status, reason, error) in enumerate(columns):
            if i in written:
                continue
            user_id = self.user_ids[i]
            records.append((
                self.run_id, user_id, self.campaign.name, self.channels[i],
                None if status == held else self.variants[i], self.templates[i],
                None, None, None, "[]", None, None, self.no,
                f"{self.key_prefix}{user_id}/{self.channels[i]}", status,
                reason if isinstance(reason, str) else None, 0, None, None, error,
                self.at, self.at,
            ))
        bulk.insert_rows(self.connection, "messages", bulk.MESSAGE_COLUMNS, records)

    def _reserve_coupons(
        self,
        positions: Sequence[int],
        ids: Mapping[int, int],
        rendered: dict[int, content.Rendered],
        coupons: dict[int, content.CouponOffer],
        redraw: Callable[[int], None],
    ) -> None:
        connection = self.connection
        issued = bulk.db_time(connection, self.planned_at)
        expiry: dict[datetime, Any] = {}

        def row(i: int) -> tuple[Any, ...]:
            coupon = coupons[i]
            expires = expiry.get(coupon.expires_at)
            if expires is None:
                expires = expiry[coupon.expires_at] = bulk.db_time(connection, coupon.expires_at)
            user_id = self.user_ids[i]
            return (coupon.code, user_id, ids[user_id], self.campaign.name, coupon.percent_off,
                    coupon.min_order_cents, issued, expires)

        batch = [row(i) for i in positions]
        for _ in range(RESERVE_ATTEMPTS):
            clashes = bulk.insert_coupons(connection, batch)
            if not clashes:
                return
            log.warning("campaign.run.coupon_collision campaign=%s codes=%d",
                        self.campaign.name, len(clashes))
            changed = [positions[at] for at in sorted(clashes)]
            for i in changed:
                redraw(i)
            for at in clashes:
                batch[at] = row(positions[at])
            connection.execute(
                update(Message)
                .where(Message.id == bindparam("b_id"))
                .values(
                    subject=bindparam("b_subject"), body=bindparam("b_body"),
                    text_body=bindparam("b_text"), coupon_code=bindparam("b_code"),
                ),
                [
                    {
                        "b_id": ids[self.user_ids[i]],
                        "b_subject": rendered[i].subject,
                        "b_body": rendered[i].html or rendered[i].text,
                        "b_text": rendered[i].text,
                        "b_code": coupons[i].code,
                    }
                    for i in changed
                ],
            )
        raise CampaignError(
            f"campaign {self.campaign.name!r}: coupon codes still collide after "
            f"{RESERVE_ATTEMPTS} draws (is the code generator broken?)"
        )


def _insert_messages(connection: Connection, records: Sequence[dict[str, Any]]) -> None:
    """One executemany (batched multi-row INSERTs) of outbox rows (test sends)."""
    if records:
        connection.execute(insert(Message), list(records))


def _public(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [
        "user_id", "external_id", "risk", "tier", "channel", "status", "skip_reason",
        "variant", "coupon_code", "percent_off", "products", "subject", "last_error",
    ]
    out = frame[columns].reset_index(drop=True).astype(object)
    out = out.where(out.notna(), None)
    out["percent_off"] = pd.Series(
        [None if v is None else int(v) for v in out["percent_off"]], dtype=object
    )
    return out


def templates_folder(config: Config) -> Path:
    """Where the campaign's template sets live (see :class:`content.Renderer`)."""
    return content.templates_dir(config)


def parse_seed_list(text: str, source: str) -> list[str]:
    """Seed addresses for a test send: one email or phone number a line, ``#`` comments.

    Raises:
        InputError: a line is neither an email address nor a phone number, or the
            list is empty.
    """
    from campaign.common.errors import InputError

    seeds: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        local, at, domain = line.partition("@")
        digits = line.lstrip("+").replace(" ", "").replace("-", "")
        if at and local and "." in domain:
            seeds.append(line)
        elif not at and digits.isdigit() and 6 <= len(digits) <= 16:
            seeds.append(line)
        else:
            raise InputError(source, f"{line!r} is neither an email address nor a phone number",
                             line=number)
    if not seeds:
        raise InputError(source, "no seed address in the file")
    return seeds


def plan_test_send(
    engine: Engine,
    config: Config,
    campaign_name: str,
    seeds: Sequence[str],
    *,
    as_of: datetime,
    now: Callable[[], datetime],
    samples: int = 3,
) -> RunReport:
    """Queue real messages of a few sample users to seed addresses only.

    Sample users are the first ``samples`` users the run would queue (else the
    first of its audience). Each seed (an email or a phone number) gets one message
    on the campaign's first channel of its medium, with ``address_override`` set and
    ``is_test`` true. Test rows live under the run and message campaign
    ``<campaign>:test`` at the slot ``now()``, so they never collide with real runs,
    never count against caps or cooldowns, and reports of the real campaign never
    see them. Coupons are visibly fake (``TEST-…``) and never reserved: no audience
    state changes.

    Raises:
        NotFound: unknown campaign, or nobody in its audience to sample.
        InputError: no channel of the campaign matches a seed's medium.
        TemplateError: a template of an enabled variant is broken.
    """
    from campaign.common.errors import InputError, NotFound

    campaign = config.campaign(campaign_name)
    as_of, planned_at = _aware(as_of), _aware(now())
    variants = enabled_variants(campaign.variants)
    if not variants:
        raise CampaignError(f"campaign {campaign.name!r} has no enabled variant")
    renderer = content.Renderer(config, _unsubscribe_key(engine, config, create=True))
    renderer.check_templates(sorted({v.template for v in variants}))
    rules = channel_rules(config, campaign)
    test_campaign = f"{campaign.name}{TEST_SUFFIX}"
    with engine.begin() as connection:
        frame = _decide(connection, config, campaign, as_of, planned_at, planned_at, None)
        queued = frame[frame["status"] == MessageStatus.QUEUED.value]
        pool = (queued if len(queued) else frame).head(samples)
        if pool.empty:
            raise NotFound("audience member to sample for a test send of", campaign.name)
        picks = content.recommend(
            connection, config, {None: [int(u) for u in pool["user_id"]]}, as_of
        )
        run_id = int(
            connection.execute(
                insert(CampaignRun)
                .values(
                    campaign=test_campaign, slot=planned_at, as_of=as_of,
                    status=RunStatus.DONE, counts={"queued": len(seeds), "test": len(seeds)},
                    started_at=planned_at, finished_at=planned_at,
                )
                .returning(CampaignRun.id)
            ).scalar_one()
        )
        high_value = coupon_tier_values(frame)
        codes = content.CodeDrawer(
            random.Random(f"{test_campaign}/{slot_key(planned_at)}"), campaign.offer.code_prefix
        )
        kept: list[PlannedMessage] = []
        records: list[dict[str, Any]] = []
        for index, seed in enumerate(seeds):
            medium = "email" if "@" in seed else "sms"
            rule = next((r for r in rules if r.medium == medium), None)
            if rule is None:
                raise InputError(seed, f"campaign {campaign.name!r} has no {medium} channel")
            user = pool.iloc[index % len(pool)]
            variant = next((v for v in variants if v.name == user["variant"]), variants[0])
            coupon = None
            if variant.offer:
                coupon = content.make_coupon(
                    campaign.offer, str(user["tier"]),
                    bool(high_value.get(user.name, False)), codes, planned_at,
                    config.shop.currency,
                )
                coupon = content.CouponOffer(
                    code=f"TEST-{coupon.code}", percent_off=coupon.percent_off,
                    min_order_cents=coupon.min_order_cents, valid_days=coupon.valid_days,
                    expires_at=coupon.expires_at,
                )
            locale = str(user["locale"] or config.shop.default_locale)
            products = picks.get(int(user["user_id"]), [])
            result = renderer.render(
                template=variant.template, medium=medium, locale=locale,
                user={k: user[k] for k in ("external_id", "name", "email", "timezone")},
                channel=rule.name, campaign=campaign.name, variant=variant.name,
                products=products, coupon=coupon,
            )
            kept.append(
                PlannedMessage(
                    user_id=int(user["user_id"]), external_id=str(user["external_id"]),
                    name=user["name"], channel=rule.name, medium=medium, variant=variant.name,
                    template=variant.template, locale=locale, address=seed,
                    subject=result.subject, html=result.html, text=result.text,
                    coupon_code=coupon.code if coupon else None,
                    percent_off=coupon.percent_off if coupon else None,
                    products=[p.view for p in products],
                )
            )
            records.append(
                {
                    "run_id": run_id, "user_id": int(user["user_id"]), "campaign": test_campaign,
                    "channel": rule.name, "variant": variant.name, "template": variant.template,
                    "subject": result.subject, "body": result.html or result.text,
                    "text_body": result.text,
                    "products": [p.stored() for p in products],
                    "coupon_code": coupon.code if coupon else None,
                    "address_override": seed, "is_test": True,
                    "idempotency_key": (
                        f"{test_campaign}/{slot_key(planned_at)}/{index}/{rule.name}"
                    ),
                    "status": MessageStatus.QUEUED.value, "skip_reason": None, "attempts": 0,
                    "next_attempt_at": planned_at,
                    "expires_at": planned_at
                    + timedelta(hours=config.delivery.message_expiry_hours),
                    "last_error": None, "created_at": planned_at, "updated_at": planned_at,
                }
            )
        _insert_messages(connection, records)
    return RunReport(
        test_campaign, planned_at, as_of, TEST, run_id=run_id,
        counts={"queued": len(records)}, messages=kept,
    )


def _unsubscribe_key(engine: Engine, config: Config, *, create: bool) -> bytes:
    """The unsubscribe-link key (a dry run only reads it, and never creates it)."""
    secrets = [secret.get_secret_value() for secret in config.server.link_secrets]
    if create:
        with engine.begin() as connection:
            return unsubscribe_key(connection, secrets, create=True)
    with engine.connect() as connection:
        return unsubscribe_key(connection, secrets, create=False)
