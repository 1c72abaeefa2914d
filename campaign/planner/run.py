"""One campaign run: audience → holdout → variant → caps → products → coupon → render →
outbox rows, in one transaction.

Every user the campaign's risk rule selects gets exactly one ``messages`` row:
``held_out`` (control group), ``skipped`` with a ``skip_reason``, or ``queued``.
Planning the same (campaign, slot) twice plans nothing new: the ``campaign_runs``
row is unique per (campaign, slot) and every message carries the unique idempotency
key ``<campaign>/<slot>/<user_id>/<channel>``; an ``IntegrityError`` on either means
"already planned", not a failure. A dry run (and :mod:`campaign.planner.preview`) is
the same code with every write switched off.

The pieces live beside it: :mod:`~campaign.planner.outcomes` (the report),
:mod:`~campaign.planner.claims` (the run row), :mod:`~campaign.planner.decisions` (who
gets what), :mod:`~campaign.planner.writer` (the outbox rows) and
:mod:`~campaign.planner.test_send`; this module is the flow and the render loop.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from campaign.common.errors import CampaignError, TemplateError
from campaign.common.progress import set_total
from campaign.config import CampaignConfig, Config
from campaign.db import pauses
from campaign.db.models import (
    CampaignRun,
    MessageStatus,
    RunStatus,
    SkipReason,
)
from campaign.experiments.variants import enabled_variants
from campaign.planner import content
from campaign.planner.audience import (
    counts_of,
    coupon_tier_values,
)
from campaign.planner.claims import (
    already_planned,
    claim_run,
    link_key,
    read_only,
    record_failure,
    slot_taken,
)
from campaign.planner.collector import freeze_more, long_lived_frozen
from campaign.planner.decisions import decide, recommendations
from campaign.planner.outcomes import (
    ALREADY_PLANNED,
    DRY_RUN,
    PAUSED,
    PLANNED,
    PlannedMessage,
    RunReport,
    aware,
)
from campaign.planner.targeting import TargetingSource, run_targeting, targeting_line
from campaign.planner.writer import OutboxWriter

Progress = Callable[[int], None]

# Queued messages rendered and written per chunk: bounds a run's memory for the texts.
WRITE_CHUNK = 2_000

__all__ = [
    "ALREADY_PLANNED", "DRY_RUN", "PAUSED", "PLANNED", "PlannedMessage", "RunReport", "plan_run",
]


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
    targeting: TargetingSource | None = None,
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
    ``targeting`` scores the campaign's customers with its uplift model when its
    audience ranks by uplift or value or excludes sleeping dogs (the use case in
    :mod:`campaign.app.runs` passes one); without one such a run ranks by risk and its
    report says so.

    Raises:
        NotFound: unknown campaign.
        TemplateError: a template of an enabled variant is broken (nothing planned).
        ConfigError: the campaign has no enabled variant.
    """
    with long_lived_frozen():
        return _plan_run(
            engine, config, campaign_name, as_of=as_of, slot=slot, dry_run=dry_run,
            progress=progress, now=now, only_user=only_user, render_limit=render_limit,
            code_rng=code_rng, targeting=targeting,
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
    targeting: TargetingSource | None,
) -> RunReport:
    campaign = config.campaign(campaign_name)
    as_of, slot = aware(as_of), aware(slot)
    planned_at = aware(now()) if now is not None else slot
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
    renderer = content.Renderer(config, link_key(engine, config, create=not dry_run))
    renderer.check_templates(sorted({v.template for v in variants}))
    if dry_run:
        with read_only(engine) as connection:
            chosen = run_targeting(connection, campaign, as_of, targeting)
            frame = decide(connection, config, campaign, as_of, slot, planned_at, only_user,
                           chosen)
            keep = _finish(
                connection, config, campaign, frame, renderer, as_of, planned_at,
                reserve=False, progress=progress, render_limit=render_limit,
                code_rng=code_rng,
            )
        return RunReport(
            campaign.name, slot, as_of, DRY_RUN,
            counts=dict(counts_of(frame["status"], frame["skip_reason"], frame["learning"])),
            decisions=_public(frame), messages=keep, notes=renderer.broken_notes(),
            targeting=targeting_line(campaign, chosen), ranked_by=chosen.ranked_by,
        )
    try:
        with engine.begin() as connection:
            run_id = claim_run(connection, campaign.name, slot, as_of, planned_at)
            if run_id is None:
                return already_planned(campaign.name, slot, as_of)
            chosen = run_targeting(connection, campaign, as_of, targeting)
            frame = decide(connection, config, campaign, as_of, slot, planned_at, only_user,
                           chosen)
            _finish(
                connection, config, campaign, frame, renderer, as_of, planned_at,
                reserve=True, progress=progress, run_id=run_id, slot=slot,
                code_rng=code_rng,
            )
            counts = dict(counts_of(frame["status"], frame["skip_reason"], frame["learning"]))
            line = targeting_line(campaign, chosen)
            connection.execute(
                update(CampaignRun)
                .where(CampaignRun.id == run_id)
                .values(
                    status=RunStatus.DONE, counts=counts, finished_at=planned_at, error=None,
                    holdout_share=campaign.holdout_share, ranked_by=chosen.ranked_by,
                    targeting_note=line,
                )
            )
    except IntegrityError as exc:
        # Another process planned this slot first (its run row or a message key); coupon
        # code collisions are drawn again in _reserve_coupons and never end up here.
        if slot_taken(engine, campaign.name, slot):
            return already_planned(campaign.name, slot, as_of)
        record_failure(engine, campaign.name, slot, as_of, planned_at, exc)
        raise
    except Exception as exc:
        record_failure(engine, campaign.name, slot, as_of, planned_at, exc)
        raise
    return RunReport(
        campaign.name, slot, as_of, PLANNED, run_id=run_id, counts=counts,
        decisions=_public(frame), notes=renderer.broken_notes(), targeting=line,
        ranked_by=chosen.ranked_by,
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

    One function on purpose: it is the run's hot loop (every queued user once), and its
    closures share the per-row columns as plain lists; split into calls per row it
    would pay attribute look-ups and frame access on every one of them.
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
    picks = recommendations(connection, config, frame, queued, as_of)
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
        outbox = OutboxWriter(connection, campaign, frame, picks, run_id, slot, planned_at,
                         config.delivery.message_expiry_hours)
    subjects: dict[int, str | None] = {}
    # The audience, picks and views live until the end of the run: out of the
    # collector's way too (until the run leaves long_lived_frozen).
    freeze_more()
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


def _public(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [
        "user_id", "external_id", "risk", "tier", "channel", "status", "skip_reason",
        "variant", "coupon_code", "percent_off", "products", "subject", "last_error",
        "uplift", "uplift_segment", "learning",
    ]
    out = frame[columns].reset_index(drop=True).astype(object)
    # Why the churn model put the customer at this risk, and the address the chosen
    # channel would use (None when skipped without one); callers mask it for people.
    out["risk_reason"] = frame["reason"].to_numpy(dtype=object) if "reason" in frame else None
    medium = frame["medium"].to_numpy(dtype=object) if "medium" in frame else [None] * len(out)
    email = frame["email"].to_numpy(dtype=object)
    phone = frame["phone"].to_numpy(dtype=object)
    out["address"] = [
        e if m == "email" else p if m == "sms" else None
        for m, e, p in zip(medium, email, phone, strict=True)
    ]
    out = out.where(out.notna(), None)
    out["percent_off"] = pd.Series(
        [None if v is None else int(v) for v in out["percent_off"]], dtype=object
    )
    return out
