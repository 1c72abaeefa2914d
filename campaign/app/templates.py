"""Templates: lint them and preview a message (``campaign templates lint|render`` and
the console's editor, :mod:`campaign.app.template_edits`), so a finding, a preview and
its checks are the same wherever a marketer looks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError, InputError, NotFound, TemplateError
from campaign.config import CampaignConfig, Config, OfferConfig
from campaign.templating.environment import (
    CampaignEnvironment,
    display_root_for,
    list_template_sets,
    make_environment,
    template_set_exists,
)
from campaign.templating.issues import LintIssue
from campaign.templating.render import Medium, Rendered, display_name, pick_locale
from campaign.templating.sms import SmsInfo


def offer_usage(config: Config) -> dict[str, frozenset[bool]]:
    """Template set → the ``offer`` flags of the campaign variants that use it."""
    usage: dict[str, set[bool]] = {}
    for campaign in config.campaigns:
        for variant in campaign.variants:
            usage.setdefault(variant.template, set()).add(variant.offer)
    return {name: frozenset(flags) for name, flags in usage.items()}


def lint_options(config: Config) -> dict[str, Any]:
    """The config's lint settings, as :func:`~campaign.templating.lint.lint_templates`
    takes them."""
    limits = config.templates
    return {
        "max_sms_segments": limits.max_sms_segments,
        "max_subject_chars": limits.max_subject_chars,
        "offer_usage": offer_usage(config),
        "render_timeout_seconds": limits.render_timeout_seconds,
        "max_output_bytes": limits.max_output_bytes,
        "stop_words": config.responses.stop_words,
    }


def lint_all(config: Config) -> list[LintIssue]:
    """``campaign templates lint``: every finding in the configured folder, sorted."""
    from campaign.templating.lint import lint_templates

    return lint_templates(config.templates_folder(), **lint_options(config))


def environment(config: Config, folder: Path | None = None) -> CampaignEnvironment:
    """The sandbox over ``folder`` (default: the configured one) with the config's limits;
    paths are shown as those of the configured folder."""
    real = config.templates_folder()
    return make_environment(
        folder or real,
        display_root=display_root_for(real),
        render_timeout_seconds=config.templates.render_timeout_seconds,
        max_output_bytes=config.templates.max_output_bytes,
    )


def campaign_for(config: Config, name: str) -> tuple[CampaignConfig | None, str, bool]:
    """The first campaign variant using set ``name``: (campaign, variant, offer)."""
    for campaign in config.campaigns:
        for variant in campaign.variants:
            if variant.template == name:
                return campaign, variant.name, variant.offer
    return None, "preview", name != "care"


def user_context(
    engine: Engine, config: Config, external_id: str, name: str, channel: str, *, now: datetime,
    notes: list[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The template context of a real customer (their name, language, recommendations)
    and a preview coupon ``CB-PREVIEW`` that is never stored; (context, locale).

    A recommender failure is a note (``notes``), not an error: the preview has no
    products then. Read-only.

    Raises:
        NotFound: no user with that shop id.
    """
    from sqlalchemy import select

    from campaign.coupons.policy import choose_offer
    from campaign.db.models import User
    from campaign.templating.context import build_context

    campaign, variant, with_offer = campaign_for(config, name)
    with engine.connect() as connection:
        user = connection.execute(
            select(User.id, User.external_id, User.name, User.locale, User.timezone).where(
                User.external_id == external_id
            )
        ).first()
        if user is None:
            raise NotFound("user", external_id)
        products: list[dict[str, Any]] = []
        try:
            from campaign.churn.artifacts import model_key
            from campaign.recommend.service import recommend_for_users

            picks = recommend_for_users(
                connection, config.recommender, [user.id], now, 5,
                key=lambda: model_key(config.model),
            )
            products = [
                {
                    "id": row["product_external_id"],
                    "name": row["name"] or "",
                    "category": row["category"] or "",
                    "brand": "",
                    "price_cents": int(row["price_cents"] or 0),
                    "url": row["url"] or "",
                    "reason": row["reason"] or "",
                }
                for row in picks.sort_values("rank").to_dict("records")
            ]
        except (ImportError, CampaignError) as exc:
            if notes is not None:
                notes.append(f"no recommendations ({exc})")
    coupon = None
    if with_offer:
        offer = choose_offer(
            "high", False, campaign.offer if campaign else OfferConfig.model_validate({}),
            config.shop.currency,
        )
        coupon = {
            "code": "CB-PREVIEW",
            "percent_off": offer.percent_off,
            "min_order_cents": offer.min_order_cents,
            "expires_at": offer.expires_at(now),
            "valid_days": offer.valid_days,
        }
    locale = user.locale or config.shop.default_locale
    context = build_context(
        user={"id": user.external_id, "name": user.name, "locale": locale,
              "timezone": user.timezone},
        products=products,
        coupon=coupon,
        campaign={"name": campaign.name if campaign else name, "variant": variant},
        shop={
            "name": config.shop.name,
            "url": config.shop.base_url,
            "postal_address": config.shop.postal_address,
            "currency": config.shop.currency,
            "timezone": config.shop.timezone,
        },
        unsubscribe_url=f"{config.shop.base_url.rstrip('/')}/unsubscribe/preview-{channel}",
        locale=locale,
    )
    return context, locale


class UserContexts:
    """Real customers' preview contexts, kept ``ttl_seconds`` (by user, set and channel)
    so that a marketer's edits re-render without recomputing the customer's
    recommendations at every keystroke. Not shared between processes."""

    def __init__(self, ttl_seconds: float = 300, size: int = 64) -> None:
        self.ttl_seconds = ttl_seconds
        self.size = size
        self._kept: dict[tuple[str, str, str], tuple[datetime, dict[str, Any], str, list[str]]] = {}

    def get(
        self, engine: Engine, config: Config, user: str, name: str, channel: str, *,
        now: datetime, notes: list[str],
    ) -> tuple[dict[str, Any], str]:
        """:func:`user_context`, from the cache while it is younger than the TTL."""
        key = (user, name, channel)
        kept = self._kept.get(key)
        if kept is not None and (now - kept[0]).total_seconds() < self.ttl_seconds:
            notes.extend(kept[3])
            return kept[1], kept[2]
        found: list[str] = []
        context, locale = user_context(engine, config, user, name, channel, now=now, notes=found)
        if len(self._kept) >= self.size:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (now, context, locale, found)
        notes.extend(found)
        return context, locale


@dataclass
class Preview:
    """One rendered message and lint's checks of it (``campaign templates render``).

    ``locale`` is the folder used; ``sms`` is set for SMS; ``notes`` are remarks such
    as a fallback to the default locale.
    """

    rendered: Rendered
    locale: str
    issues: list[LintIssue]
    sms: SmsInfo | None = None
    notes: list[str] = field(default_factory=list)


def render_preview(
    config: Config,
    name: str,
    channel: str,
    *,
    now: datetime,
    locale: str | None = None,
    user: str | None = None,
    engine: Callable[[], Engine] | None = None,
    env: CampaignEnvironment | None = None,
    contexts: UserContexts | None = None,
) -> Preview:
    """Render set ``name`` for ``channel`` (email or sms) with a sample or a real user
    (``user``, the shop's id; ``engine`` opens the database for it), then lint's checks
    of the message. ``env`` renders from another environment (over a draft's copy of
    the configured folder, see :func:`environment`); ``contexts`` keeps real users'
    contexts between calls. Sends and stores nothing.

    Raises:
        InputError: a bad channel, or a locale the set has no folder for.
        TemplateError: no such set, or the message does not render.
        NotFound: no such user.
    """
    from campaign.common.optout import StopWords
    from campaign.templating.context import sample_context
    from campaign.templating.lint import check_rendered_email, check_rendered_sms, sms_segments
    from campaign.templating.render import render_message

    if channel not in ("email", "sms"):
        raise InputError("--channel", f"{channel!r} is not email or sms")
    env = env or environment(config)
    if not template_set_exists(env.templates_dir, name):
        known = ", ".join(list_template_sets(env.templates_dir)) or "none"
        raise TemplateError(display_name(env, name), f"no such template set (known: {known})")
    available = env.locales_of(name)
    if locale is not None and pick_locale(available, locale, None) is None:
        raise InputError(
            "--locale",
            f"template set {name!r} has no {locale!r} folder (available:"
            f" {', '.join(available) or 'none'})",
        )
    notes: list[str] = []
    default_locale = config.shop.default_locale
    if user is not None:
        if engine is None:
            raise InputError("--user", "a real user's preview needs the database")
        if contexts is not None:
            context, user_locale = contexts.get(
                engine(), config, user, name, channel, now=now, notes=notes
            )
        else:
            context, user_locale = user_context(
                engine(), config, user, name, channel, now=now, notes=notes
            )
        wanted = locale or user_locale
    else:
        wanted = locale or default_locale
        _, _, with_offer = campaign_for(config, name)
        context = sample_context(wanted, with_coupon=with_offer)
    used = pick_locale(available, wanted, default_locale)
    if locale is None and used is not None and pick_locale(available, wanted, None) is None:
        notes.append(
            f"{name} has no {wanted!r} folder; using {used!r}"
            f" (the shop's default_locale {default_locale!r})"
        )
    medium: Medium = "sms" if channel == "sms" else "email"
    rendered = render_message(env, name, medium, wanted, context, default_locale=default_locale)
    assert used is not None  # render_message found the folder
    if used != context.get("locale"):
        context = {**context, "locale": used}
    limits = config.templates
    if medium == "sms":
        words = config.responses.stop_words
        issues = check_rendered_sms(
            env, name, used, rendered, context, max_segments=limits.max_sms_segments,
            stop_words=StopWords(words) if words is not None else None,
        )
        return Preview(rendered, used, issues, sms_segments(rendered.text), notes)
    issues = check_rendered_email(
        env, name, used, rendered, context, max_subject_chars=limits.max_subject_chars
    )
    return Preview(rendered, used, issues, None, notes)
