"""Test sends: real messages of a few sample users, to seed addresses only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError
from campaign.config import Config
from campaign.db.dialect import inserted_id
from campaign.db.models import (
    CampaignRun,
    MessageStatus,
    RunStatus,
)
from campaign.experiments.variants import enabled_variants
from campaign.planner import content
from campaign.planner.audience import (
    channel_rules,
    coupon_tier_values,
)
from campaign.planner.claims import link_key
from campaign.planner.decisions import decide
from campaign.planner.outcomes import TEST, TEST_SUFFIX, PlannedMessage, RunReport, aware, slot_key
from campaign.planner.writer import insert_messages


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
    as_of, planned_at = aware(as_of), aware(now())
    variants = enabled_variants(campaign.variants)
    if not variants:
        raise CampaignError(f"campaign {campaign.name!r} has no enabled variant")
    renderer = content.Renderer(config, link_key(engine, config, create=True))
    renderer.check_templates(sorted({v.template for v in variants}))
    rules = channel_rules(config, campaign)
    test_campaign = f"{campaign.name}{TEST_SUFFIX}"
    with engine.begin() as connection:
        frame = decide(connection, config, campaign, as_of, planned_at, planned_at, None)
        queued = frame[frame["status"] == MessageStatus.QUEUED.value]
        pool = (queued if len(queued) else frame).head(samples)
        if pool.empty:
            raise NotFound("audience member to sample for a test send of", campaign.name)
        picks = content.recommend(
            connection, config, {None: [int(u) for u in pool["user_id"]]}, as_of
        )
        run_id = inserted_id(
            connection.execute(
                insert(CampaignRun).values(
                    campaign=test_campaign, slot=planned_at, as_of=as_of,
                    status=RunStatus.DONE, counts={"queued": len(seeds), "test": len(seeds)},
                    started_at=planned_at, finished_at=planned_at,
                )
            )
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
        insert_messages(connection, records)
    return RunReport(
        test_campaign, planned_at, as_of, TEST, run_id=run_id,
        counts={"queued": len(records)}, messages=kept,
    )
