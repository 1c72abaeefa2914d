"""What goes into a planned message: products, coupon, rendered text.

The planner's one seam to the templating, offers, coupons and recommender parts, so
:mod:`campaign.planner.run` reads as the decision flow and this module holds the
wiring: one sandboxed environment per run (compiled templates are cached by it and
reused for every user), one recommender fit and one call per batch, products shared
between users, coupon codes drawn with the policy's prefix (the rows are written by
:mod:`campaign.planner.rows`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaign.churn.artifacts import model_key
from campaign.common.errors import ConfigError, TemplateBudgetError, TemplateError
from campaign.common.links import unsubscribe_url
from campaign.config import Config, OfferConfig
from campaign.coupons.policy import CODE_ALPHABET, CODE_LENGTH, Offer, choose_offer
from campaign.db.models import Product
from campaign.recommend.reasons import localize_reason
from campaign.recommend.service import fit_recommender, recommend_with
from campaign.templating.context import check_plain, first_name
from campaign.templating.environment import make_environment, template_set_exists
from campaign.templating.render import Rendered, render_message

__all__ = [
    "CodeDrawer", "CouponOffer", "Pick", "Rendered", "Renderer", "make_coupon", "recommend",
]

def templates_dir(config: Config) -> Path:
    """The templates folder (:meth:`Config.templates_folder`)."""
    return config.templates_folder()


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


class CouponOffer(NamedTuple):
    """A coupon about to be offered: code, discount and validity (not yet reserved).

    A named tuple: one is made per message of a run, and tuples are built fastest.
    """

    code: str
    percent_off: int
    min_order_cents: int
    valid_days: int
    expires_at: datetime


# (id of the policy, tier, high value) → (the policy itself, its offer). Holding the
# policy keeps its id from being reused by another config while the entry lives.
_offer_cache: dict[tuple[int, str, bool, str], tuple[OfferConfig, Offer]] = {}
_CODE_SPACE = len(CODE_ALPHABET) ** CODE_LENGTH
_CODE_BITS = (_CODE_SPACE - 1).bit_length()
_ALPHABET_BYTES = np.frombuffer(CODE_ALPHABET.encode("ascii"), dtype=np.uint8)


class CodeDrawer:
    """Draws fresh coupon codes like :func:`campaign.coupons.policy.new_coupon_code`, in blocks.

    Each code is ``<prefix>-`` and ``CODE_LENGTH`` symbols of ``CODE_ALPHABET``,
    uniform over all 31^10 bodies: 8 random bytes per candidate, whose low 50 bits
    are kept when below 31^10 (about 73 % are; the rest are drawn again) and written
    in base 31. Bytes come from ``rng.randbytes`` a block at a time, so with
    :class:`secrets.SystemRandom` one call to the OS generator serves about 750
    codes. Pass a seeded :class:`random.Random` in tests: the same seed draws the
    same codes.
    """

    BLOCK = 1024

    def __init__(self, rng: random.Random, prefix: str = "CB") -> None:
        self.rng = rng
        self.prefix = prefix
        self._codes: list[str] = []

    def __call__(self) -> str:
        """The next code."""
        if not self._codes:
            self._codes = self._block()
        return self._codes.pop()

    def _block(self) -> list[str]:
        raw = np.frombuffer(self.rng.randbytes(8 * self.BLOCK), dtype="<u8")
        values = raw & np.uint64((1 << _CODE_BITS) - 1)
        values = values[values < np.uint64(_CODE_SPACE)]
        digits = np.empty((len(values), CODE_LENGTH), dtype=np.intp)
        for position in range(CODE_LENGTH):
            values, digits[:, position] = np.divmod(values, np.uint64(len(CODE_ALPHABET)))
        bodies = np.ascontiguousarray(_ALPHABET_BYTES[digits]).view(f"S{CODE_LENGTH}").ravel()
        head = f"{self.prefix}-" if self.prefix else ""
        codes = [head + body.decode("ascii") for body in bodies.tolist()]
        codes.reverse()  # handed out from the end, so in the order drawn
        return codes


def make_coupon(
    offer_config: OfferConfig,
    tier: str,
    high_value: bool,
    codes: CodeDrawer,
    issued_at: datetime,
    currency: str = "CNY",
) -> CouponOffer:
    """A fresh code from ``codes`` and the policy's discount for (tier, value); nothing
    is stored. Build ``codes`` with the policy's ``code_prefix``; ``currency`` is the
    shop's (the policy's ``min_order`` is in it)."""
    key = (id(offer_config), tier, high_value, currency)
    cached = _offer_cache.get(key)
    if cached is None or cached[0] is not offer_config:
        offer = choose_offer(tier, high_value, offer_config, currency)
        cached = _offer_cache[key] = (offer_config, offer)
    offer = cached[1]
    return CouponOffer(
        code=codes(),
        percent_off=int(offer.percent_off),
        min_order_cents=int(offer.min_order_cents),
        valid_days=int(offer.valid_days),
        expires_at=issued_at + timedelta(days=int(offer.valid_days)),
    )


class Pick(NamedTuple):
    """One recommended product for one user.

    ``view`` is the product as templates see it (the documented fields of
    ``products`` items: id, name, category, brand, price_cents, url, reason). Views are
    shared between users with the same (product, reason), and picks between users
    with the same (product, rank, reason): templates run in an immutable sandbox, so
    sharing is safe and saves a million small objects a run. ``stored_text`` is
    :meth:`stored` as JSON text (see :func:`stored_products_json`).
    """

    product_id: int
    product_external_id: str
    rank: int
    reason: str
    view: dict[str, Any]
    stored_text: str = ""

    def stored(self) -> dict[str, Any]:
        """The form kept in ``messages.products``."""
        return {"product_id": self.product_id, "rank": self.rank, "reason": self.reason}


def stored_products_json(picks: Sequence[Pick]) -> str:
    """The JSON text of ``messages.products`` for ``picks``: exactly what the ORM's JSON
    type would write (``json.dumps`` defaults), from each pick's encoded form."""
    return "[" + ", ".join([pick.stored_text for pick in picks]) + "]"


def recommend(
    connection: Connection,
    config: Config,
    groups: Mapping[bool | None, Sequence[int]],
    as_of: datetime,
) -> dict[int, list[Pick]]:
    """Top-k products per user (k = ``recommender.k``), best first.

    ``groups`` maps an ``allow_repurchase`` setting (None: the recommender's own) to
    the users it applies to. The recommender is fitted once and asked once per
    group. The recommender is the active recommender model version (the winners of
    ``campaign train recommend``), else the configured hybrid.
    """
    groups = {setting: users for setting, users in groups.items() if len(users)}
    if not groups:
        return {}
    fitted = fit_recommender(
        connection, config.recommender, as_of, key=lambda: model_key(config.model)
    )
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
    users, ranks = picks["user_id"].to_numpy(), picks["rank"].to_numpy()
    # The recommender answers user by user, best first: sort only when it did not.
    changes = users[1:] != users[:-1]
    grouped = bool(np.all(changes | (ranks[1:] > ranks[:-1]))) and (
        int(np.count_nonzero(changes)) + 1 == len(np.unique(users))
    )
    if not grouped:
        picks = picks.sort_values(["user_id", "rank"], kind="stable")
        users = picks["user_id"].to_numpy()
    # One shared Pick per distinct (product, rank, reason): a 100,000-user run has a
    # million picks but only a few thousand distinct ones. Grouped without a Python
    # loop over the million.
    product_codes, product_ids = pd.factorize(picks["product_id"].to_numpy())
    reason_codes, reason_texts = pd.factorize(picks["reason"].fillna("").to_numpy(dtype=object))
    rank_values = picks["rank"].to_numpy(dtype=np.int64)
    width = int(rank_values.max()) + 1
    combined = (product_codes.astype(np.int64) * width + rank_values) * len(reason_texts)
    codes, distinct = pd.factorize(combined + reason_codes)
    views: dict[tuple[int, str], dict[str, Any]] = {}
    table = [
        _new_pick(
            catalogue, views, int(product_ids[key // len(reason_texts) // width]),
            int(key // len(reason_texts) % width), reason_texts[key % len(reason_texts)],
        )
        for key in distinct.tolist()
    ]
    known = np.array([pick is not None for pick in table], dtype=bool)
    if not known.all():
        keep = known[codes]
        codes, users = codes[keep], users[keep]
    objects = [table[code] for code in codes.tolist()]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users
    ends = np.r_[starts[1:], len(users)]
    return {
        user: objects[start:end]  # type: ignore[misc]
        for user, start, end in zip(
            users[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
        )
    }


def _new_pick(
    catalogue: Mapping[int, dict[str, Any]],
    views: dict[tuple[int, str], dict[str, Any]],
    product_id: int,
    rank: int,
    reason: Any,
) -> Pick | None:
    base = catalogue.get(product_id)
    if base is None:
        return None
    text = str(reason or "")
    view = views.get((product_id, text))
    if view is None:
        view = views[(product_id, text)] = {**base, "reason": text}
    stored = {"product_id": product_id, "rank": rank, "reason": text}
    return Pick(product_id, str(view["id"]), rank, text, view, json.dumps(stored))


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
    """Renders a run's messages with one sandboxed environment (compiled once, reused).

    The context is checked for plain data (:func:`check_plain`) in parts: the shop
    once, each shared product view once per run, the per-user values in every
    message, so every value a template sees is checked without walking the same
    product views a hundred thousand times.
    """

    def __init__(self, config: Config, unsubscribe_key: bytes) -> None:
        self.config = config
        self.folder = templates_dir(config)
        limits = config.templates
        self.env = make_environment(
            self.folder,
            render_timeout_seconds=limits.render_timeout_seconds,
            max_output_bytes=limits.max_output_bytes,
        )
        shop = config.shop
        self.shop = {
            "name": shop.name,
            "url": shop.base_url,
            "postal_address": shop.postal_address,
            "currency": shop.currency,
            "timezone": shop.timezone,
        }
        check_plain(self.shop, "context.shop")
        # id → view: holding the view keeps its id from being reused by another object.
        self._plain_views: dict[int, Any] = {}
        # One budget, re-armed for every message (render_message starts it afresh).
        self._budget = self.env.new_budget()
        self._isoformats: dict[datetime, str] = {}
        self.secret = unsubscribe_key
        # Sets that went over the render budget in this run, with that first error:
        # nothing more is rendered with them (each further try could take the budget).
        self.broken: dict[str, TemplateBudgetError] = {}
        self.broken_skips: dict[str, int] = {}
        # language → id of a shared view → (that view, its translated copy)
        self._translated: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {}

    def check_templates(self, template_sets: Sequence[str]) -> None:
        """Lint the sets a run will use; the first error stops the run before planning.

        Raises:
            TemplateError: with the file and line of the first error found.
        """
        from campaign.templating.lint_cache import lint_templates_cached

        for name in template_sets:
            if not template_set_exists(self.folder, name):
                raise TemplateError(f"{self.env.display_root}/{name}", "no such template set")
        wanted = [f"/{name}/" for name in (*template_sets, "_layouts")]
        limits = self.config.templates
        # Kept while the folder's files are unchanged (campaign.templating.lint_cache).
        for issue in lint_templates_cached(
            self.folder,
            display_root=self.env.display_root,
            max_sms_segments=limits.max_sms_segments,
            max_subject_chars=limits.max_subject_chars,
            render_timeout_seconds=limits.render_timeout_seconds,
            max_output_bytes=limits.max_output_bytes,
            stop_words=self.config.responses.stop_words,
        ):
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

        After a message of a set went over the render budget, the set is broken for
        this renderer (this run): its later messages raise that first error at once.

        Raises:
            TemplateError: anything the template does wrong for this user, or a value
                that is not plain data.
        """
        broken = self.broken.get(template)
        if broken is not None:
            self.broken_skips[template] += 1
            raise broken
        name = user.get("name") or ""
        views = self.views_for(products, locale)
        context = {
            "user": {
                "id": str(user["external_id"]),
                "name": name,
                "first_name": first_name(name),
                "locale": locale,
                "timezone": user.get("timezone") or self.shop["timezone"],
            },
            "products": views,
            "coupon": None if coupon is None else {
                "code": coupon.code,
                "percent_off": coupon.percent_off,
                "min_order_cents": coupon.min_order_cents,
                "expires_at": self._iso(coupon.expires_at),
                "valid_days": coupon.valid_days,
            },
            "campaign": {"name": campaign, "variant": variant},
            "shop": self.shop,
            "unsubscribe_url": unsubscribe_url(
                self.config.shop.base_url, self.secret, str(user["external_id"]), channel
            ),
            "locale": locale,
        }
        self._check_plain(template, context, views)
        try:
            return render_message(
                self.env, template, medium,  # type: ignore[arg-type]
                locale, context, default_locale=self.config.shop.default_locale,
                budget=self._budget, context_checked=True,
            )
        except TemplateBudgetError as exc:
            self.broken[template] = exc
            self.broken_skips[template] = 0
            raise

    def broken_notes(self) -> list[str]:
        """One line per set broken in this run: its first error and what it cost."""
        return [
            f"{error} (template set {name!r} stopped for this run;"
            f" {self.broken_skips[name]} more message(s) skipped)"
            for name, error in self.broken.items()
        ]

    def views_for(self, products: Sequence[Pick], locale: str) -> list[dict[str, Any]]:
        """The products as the recipient reads them: reasons in their language.

        English views are the shared ones; a translated copy is made once per view and
        language, and kept (with the view, so the view's id stays unique while it is
        cached), so its identity (and the plain-data check) is stable.
        """
        language = (locale or "en").replace("_", "-").split("-")[0].lower()
        if language == "en":
            return [p.view for p in products]
        table = self._translated.get(language)
        if table is None:
            table = self._translated[language] = {}
        views = []
        for pick in products:
            cached = table.get(id(pick.view))
            if cached is None:
                translated = {**pick.view, "reason": localize_reason(pick.reason, locale)}
                cached = table[id(pick.view)] = (pick.view, translated)
            views.append(cached[1])
        return views

    def _iso(self, moment: datetime) -> str:
        # A run's coupons expire at a handful of distinct times.
        text = self._isoformats.get(moment)
        if text is None:
            text = self._isoformats[moment] = moment.isoformat()
        return text

    def _check_plain(
        self, template: str, context: Mapping[str, Any], views: Sequence[Any]
    ) -> None:
        """check_plain over ``context``, skipping the shop and product views already seen.

        Flat dicts of plain scalars (user, coupon, campaign) pass a quick type test;
        anything else gets the full :func:`check_plain` (and its error message).
        """
        try:
            for key, value in context.items():
                kind = type(value)
                if key == "products" or value is self.shop or kind is str:
                    continue
                if kind is dict and all(
                    type(k) is str and type(v) in _FLAT_PLAIN for k, v in value.items()
                ):
                    continue
                check_plain(value, f"context.{key}")
            plain = self._plain_views
            for index, view in enumerate(views):
                if id(view) not in plain:
                    check_plain(view, f"context.products[{index}]")
                    plain[id(view)] = view
        except TypeError as exc:
            raise TemplateError(f"{self.env.display_root}/{template}", str(exc)) from None


# Scalar types a flat dict may hold without the full check (a subset of check_plain's).
_FLAT_PLAIN = frozenset({str, int, float, bool, type(None)})
