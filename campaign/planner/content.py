"""What goes into a planned message: products, coupon, rendered text.

The planner's one seam to the templating, offers, coupons and recommender parts, so
:mod:`campaign.planner.run` reads as the decision flow and this module holds the
wiring: one sandboxed environment per run (compiled templates are cached by it and
reused for every user), one recommendation call per batch, coupon rows inserted in
bulk.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from campaign.config import Config, OfferConfig
from campaign.db.models import Coupon, Product
from campaign.errors import ConfigError, TemplateError
from campaign.offers import choose_offer, new_coupon_code
from campaign.planner.links import unsubscribe_secret, unsubscribe_url
from campaign.recommend.service import fit_recommender, recommend_with
from campaign.templating.context import first_name
from campaign.templating.environment import make_environment, template_set_exists
from campaign.templating.render import Rendered, render_message

__all__ = [
    "CouponOffer", "Pick", "Rendered", "Renderer", "make_coupon", "recommend", "reserve_coupons",
]

_REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def templates_dir(config: Config) -> Path:
    """The templates folder: ``[templates] dir`` against the config file's folder,
    falling back to the repository's ``templates/`` when that folder does not exist."""
    section = getattr(config, "templates", None)
    configured = getattr(section, "dir", None) or "templates"
    folder = config.resolve_path(str(configured))
    return folder if folder.is_dir() else _REPO_TEMPLATES


def validate_campaign_templates(config: Config) -> None:
    """Fail unless every campaign has an enabled variant, variant names are unique and
    every variant names an existing template set.

    Called by the CLI at start (``load_config`` stays free of file-system checks
    beyond the config file itself).

    Raises:
        ConfigError: naming the campaign, variant and the missing set.
    """
    folder = templates_dir(config)
    for index, campaign in enumerate(config.campaigns):
        if not any(variant.enabled for variant in campaign.variants):
            raise ConfigError(
                config.source, f"campaigns[{index}].variants",
                f"campaign {campaign.name!r} has no enabled variant",
            )
        names = [variant.name for variant in campaign.variants]
        if len(set(names)) != len(names):
            raise ConfigError(
                config.source, f"campaigns[{index}].variants",
                f"campaign {campaign.name!r} names a variant twice",
            )
        for number, variant in enumerate(campaign.variants):
            if not template_set_exists(folder, variant.template):
                raise ConfigError(
                    config.source,
                    f"campaigns[{index}].variants[{number}].template",
                    f"template set {variant.template!r} not found in {folder}",
                )


@dataclass(frozen=True)
class CouponOffer:
    """A coupon about to be offered: code, discount and validity (not yet reserved)."""

    code: str
    percent_off: int
    min_order_cents: int
    valid_days: int
    expires_at: datetime


_offer_cache: dict[tuple[int, str, bool], Any] = {}


def make_coupon(
    offer_config: OfferConfig,
    tier: str,
    high_value: bool,
    rng: random.Random,
    issued_at: datetime,
) -> CouponOffer:
    """A fresh code and the policy's discount for (tier, value); nothing is stored."""
    key = (id(offer_config), tier, high_value)
    offer = _offer_cache.get(key)
    if offer is None:
        offer = _offer_cache[key] = choose_offer(tier, high_value, offer_config)
    return CouponOffer(
        code=new_coupon_code(rng),
        percent_off=int(offer.percent_off),
        min_order_cents=int(offer.min_order_cents),
        valid_days=int(offer.valid_days),
        expires_at=issued_at + timedelta(days=int(offer.valid_days)),
    )


def reserve_coupons(
    connection: Connection,
    coupons: Sequence[tuple[CouponOffer, int, int | None, str]],
    issued_at: datetime,
) -> None:
    """Insert ``(coupon, user_id, message_id, campaign)`` rows into ``coupons`` in bulk.

    Part of the run's transaction: a rolled-back run reserves nothing. Codes are
    unique in the table; a collision (vanishingly unlikely with random codes) fails
    the whole run rather than sharing a code.
    """
    if not coupons:
        return
    connection.execute(
        insert(Coupon),
        [
            {
                "code": coupon.code,
                "user_id": user_id,
                "message_id": message_id,
                "campaign": campaign,
                "percent_off": coupon.percent_off,
                "min_order_cents": coupon.min_order_cents,
                "issued_at": issued_at,
                "expires_at": coupon.expires_at,
                "redeemed_at": None,
                "order_id": None,
            }
            for coupon, user_id, message_id, campaign in coupons
        ],
    )


class Pick(NamedTuple):
    """One recommended product for one user.

    ``view`` is the product as templates see it (the documented fields of
    ``products`` items: id, name, category, brand, price_cents, url, reason). Views are
    shared between users with the same (product, reason): templates run in an
    immutable sandbox, so sharing is safe and saves a million small dicts a run.
    """

    product_id: int
    product_external_id: str
    rank: int
    reason: str
    view: dict[str, Any]

    def stored(self) -> dict[str, Any]:
        """The form kept in ``messages.products``."""
        return {"product_id": self.product_id, "rank": self.rank, "reason": self.reason}


def recommend(
    connection: Connection,
    config: Config,
    groups: Mapping[bool | None, Sequence[int]],
    as_of: datetime,
) -> dict[int, list[Pick]]:
    """Top-k products per user (k = ``recommender.k``), best first.

    ``groups`` maps an ``allow_repurchase`` setting (None: the recommender's own) to
    the users it applies to. The recommender is fitted once and asked once per
    group.
    """
    groups = {setting: users for setting, users in groups.items() if len(users)}
    if not groups:
        return {}
    fitted = fit_recommender(connection, config.recommender, as_of)
    frames = [
        recommend_with(
            fitted, config.recommender, list(users), config.recommender.k,
            allow_repurchase=setting,
        )
        for setting, users in groups.items()
    ]
    picks = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if picks.empty:
        return {}
    catalogue = _products(connection, {int(p) for p in picks["product_id"].unique()})
    views: dict[tuple[int, str], dict[str, Any]] = {}
    out: dict[int, list[Pick]] = {}
    picks = picks.sort_values(["user_id", "rank"], kind="stable")
    for user_id, product_id, rank, reason in zip(
        picks["user_id"].to_numpy(), picks["product_id"].to_numpy(),
        picks["rank"].to_numpy(), picks["reason"].to_numpy(), strict=True,
    ):
        base = catalogue.get(int(product_id))
        if base is None:
            continue
        text = str(reason or "")
        view = views.get((int(product_id), text))
        if view is None:
            view = views[(int(product_id), text)] = {**base, "reason": text}
        out.setdefault(int(user_id), []).append(
            Pick(int(product_id), str(view["id"]), int(rank), text, view)
        )
    return out


def _products(connection: Connection, ids: set[int]) -> dict[int, dict[str, Any]]:
    rows = connection.execute(
        select(
            Product.id, Product.external_id, Product.name, Product.category, Product.brand,
            Product.price_cents, Product.url,
        )
    ).all()
    return {
        row.id: {
            "id": row.external_id,
            "name": row.name or "",
            "category": row.category or "",
            "brand": row.brand or "",
            "price_cents": int(row.price_cents or 0),
            "url": row.url or "",
        }
        for row in rows
        if row.id in ids
    }


class Renderer:
    """Renders a run's messages with one sandboxed environment (compiled once, reused)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.folder = templates_dir(config)
        self.env = make_environment(self.folder)
        shop = config.shop
        self.shop = {
            "name": shop.name,
            "url": shop.base_url,
            "postal_address": shop.postal_address,
            "currency": shop.currency,
            "timezone": shop.timezone,
        }
        secrets = tuple(s.get_secret_value() for s in config.server.secrets)
        self.secret = unsubscribe_secret(secrets, shop.name, config.database_url())

    def check_templates(self, template_sets: Sequence[str]) -> None:
        """Lint the sets a run will use; the first error stops the run before planning.

        Raises:
            TemplateError: with the file and line of the first error found.
        """
        from campaign.templating.lint import lint_templates

        for name in template_sets:
            if not template_set_exists(self.folder, name):
                raise TemplateError(f"{self.env.display_root}/{name}", "no such template set")
        wanted = [f"/{name}/" for name in (*template_sets, "_layouts")]
        for issue in lint_templates(self.folder, display_root=self.env.display_root):
            if issue.severity == "error" and any(w in f"/{issue.path}" for w in wanted):
                raise TemplateError(issue.path, issue.message, issue.line)

    def render(
        self,
        *,
        template: str,
        medium: str,
        locale: str,
        user: Mapping[str, Any],
        channel: str,
        campaign: str,
        variant: str,
        products: Sequence[Pick],
        coupon: CouponOffer | None,
        risk: Any = None,
        tier: Any = None,
    ) -> Rendered:
        """Render one message with the documented context.

        Raises:
            TemplateError: anything the template does wrong for this user.
        """
        name = user.get("name") or ""
        context = {
            "user": {
                "id": str(user["external_id"]),
                "name": name,
                "first_name": first_name(name),
                "locale": locale,
                "timezone": user.get("timezone") or self.shop["timezone"],
            },
            "products": [p.view for p in products],
            "coupon": None if coupon is None else {
                "code": coupon.code,
                "percent_off": coupon.percent_off,
                "min_order_cents": coupon.min_order_cents,
                "expires_at": coupon.expires_at.isoformat(),
                "valid_days": coupon.valid_days,
            },
            "campaign": {"name": campaign, "variant": variant},
            "shop": self.shop,
            "unsubscribe_url": unsubscribe_url(
                self.config.shop.base_url, self.secret, str(user["external_id"]), channel
            ),
            "locale": locale,
        }
        return render_message(
            self.env, template, medium,  # type: ignore[arg-type]
            locale, context, default_locale=self.config.shop.default_locale,
        )
