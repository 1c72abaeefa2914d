"""The documented template context: what a marketer's template may use.

Every render gets exactly these names, as plain data (dicts, lists, ``str``, ``int``,
``Decimal``, ``bool``, ``None``; dates as ISO 8601 strings), never ORM objects, so a
template cannot reach the database or run code through an object's methods.
:data:`CONTEXT` is the single description the linter, the docs and
:func:`sample_context` follow.

Money is always integer minor units (``*_cents``); format it with ``|money``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

# name → (description, fields of the object or of each list item; None for scalars)
CONTEXT: dict[str, tuple[str, dict[str, str] | None]] = {
    "user": (
        "the recipient",
        {
            "id": "the shop's own customer id",
            "name": "full name as the shop has it (may be empty)",
            "first_name": "the first word of the name, or empty",
            "locale": "the recipient's locale, e.g. zh-CN",
            "timezone": "IANA timezone used for dates, e.g. Asia/Shanghai",
        },
    ),
    "products": (
        "recommended products, best first (may be empty)",
        {
            "id": "the shop's own product id",
            "name": "product name",
            "category": "category",
            "brand": "brand (may be empty)",
            "price_cents": "price in minor units; show it with |money",
            "url": "product page URL",
            "reason": "why we recommend it, one short sentence",
        },
    ),
    "coupon": (
        "the coupon of this message, or none (care messages, control of offer tests)",
        {
            "code": "the unique code, e.g. CB-7KQ4M9XH2P",
            "percent_off": "whole percent, e.g. 20; show it with |percent",
            "min_order_cents": "minimum order in minor units (0 = none); show with |money",
            "expires_at": "expiry as ISO 8601 UTC; show it with |date",
            "valid_days": "days the coupon is valid",
        },
    ),
    "campaign": (
        "the campaign and variant sending this message",
        {"name": "campaign name", "variant": "variant name"},
    ),
    "shop": (
        "the sender",
        {
            "name": "shop name",
            "url": "the shop's public base URL",
            "postal_address": "postal address (legally required in marketing email)",
            "currency": "ISO 4217 currency of all amounts",
            "timezone": "the shop's timezone",
        },
    ),
    "unsubscribe_url": ("one-click unsubscribe link for this recipient and channel", None),
    "locale": ("the locale the message is rendered in (selects number/date formats)", None),
}

SAMPLE_UNSUBSCRIBE_URL = "https://shop.example/u/sample-token"
_PLAIN_SCALARS = (str, int, float, Decimal, bool, type(None))


def object_fields(name: str) -> dict[str, str] | None:
    """Documented fields of ``name`` (of each item for ``products``), or None."""
    entry = CONTEXT.get(name)
    return entry[1] if entry else None


def check_plain(value: Any, path: str = "context") -> None:
    """Refuse anything but plain data, so no object with methods reaches a template.

    Raises:
        TypeError: naming the first offending path, e.g. ``context.user: User``.
    """
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, Mapping) and type(value) is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: keys must be strings, got {type(key).__name__}")
            check_plain(item, f"{path}.{key}")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_plain(item, f"{path}[{index}]")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not plain data")


def first_name(name: str | None) -> str:
    """The first word of a full name ("" when unknown); Chinese names are kept whole."""
    if not name:
        return ""
    name = name.strip()
    if any("\u4e00" <= ch <= "\u9fff" for ch in name):
        # Chinese names have no space; the whole name reads naturally in a greeting.
        return name
    return name.split()[0] if name.split() else ""


def build_context(
    *,
    user: Mapping[str, Any],
    products: Sequence[Mapping[str, Any]],
    coupon: Mapping[str, Any] | None,
    campaign: Mapping[str, Any],
    shop: Mapping[str, Any],
    unsubscribe_url: str,
    locale: str,
) -> dict[str, Any]:
    """Assemble the documented context from plain inputs (pure).

    ``user`` needs ``id`` (external) and may carry ``name``, ``locale``,
    ``timezone``; ``products`` items carry the product fields of :data:`CONTEXT`
    (extra keys are dropped); ``coupon`` is None or has ``code``, ``percent_off``,
    ``min_order_cents``, ``expires_at`` (datetime or ISO string), ``valid_days``.

    Raises:
        TypeError: a value is not plain data.
    """
    product_fields = object_fields("products") or {}
    name = user.get("name") or ""
    context: dict[str, Any] = {
        "user": {
            "id": str(user.get("id", "")),
            "name": name,
            "first_name": user.get("first_name") or first_name(name),
            "locale": user.get("locale") or locale,
            "timezone": user.get("timezone") or shop.get("timezone") or "UTC",
        },
        "products": [
            {key: _plain(product.get(key, "")) for key in product_fields} for product in products
        ],
        "coupon": None,
        "campaign": {"name": campaign.get("name", ""), "variant": campaign.get("variant", "")},
        "shop": {
            "name": shop.get("name", ""),
            "url": shop.get("url") or shop.get("base_url", ""),
            "postal_address": shop.get("postal_address", ""),
            "currency": shop.get("currency", "CNY"),
            "timezone": shop.get("timezone", "UTC"),
        },
        "unsubscribe_url": unsubscribe_url,
        "locale": locale,
    }
    if coupon is not None:
        context["coupon"] = {
            "code": str(coupon["code"]),
            "percent_off": int(coupon["percent_off"]),
            "min_order_cents": int(coupon.get("min_order_cents") or 0),
            "expires_at": _plain(coupon["expires_at"]),
            "valid_days": int(coupon.get("valid_days") or 0),
        }
    check_plain(context)
    return context


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        # numpy scalars from a DataFrame row become Python numbers.
        return value.item()
    return value


_SAMPLE_PRODUCTS = {
    "en": [
        (
            "P-1001",
            "Merino Wool Crew Sweater",
            "Knitwear",
            "Northfold",
            45900,
            "Pairs with the scarf you bought in October",
        ),
        (
            "P-2044",
            "Everyday Canvas Tote",
            "Bags",
            "Harbor & Co",
            12900,
            "Popular with customers who like what you like",
        ),
        (
            "P-3310",
            "Ceramic Pour-Over Set",
            "Home",
            "Kiln Studio",
            26800,
            "New in a category you often browse",
        ),
    ],
    "zh": [
        ("P-1001", "美利奴羊毛圆领毛衣", "针织", "北折", 45900, "和您十月购买的围巾很搭"),
        ("P-2044", "日常帆布托特包", "箱包", "港湾", 12900, "与您品味相近的顾客都喜欢"),
        ("P-3310", "陶瓷手冲咖啡套装", "家居", "窑坊", 26800, "您常逛的品类上新了"),
    ],
}


def sample_context(locale: str, *, with_coupon: bool = True) -> dict[str, Any]:
    """A realistic context for previews, lint and tests, in ``locale``.

    Dates are fixed (the coupon expires 2026-11-15) so output is reproducible.
    """
    chinese = locale.lower().startswith("zh")
    key = "zh" if chinese else "en"
    issued = datetime.fromisoformat("2026-11-01T02:00:00+00:00")
    return build_context(
        user={
            "id": "U-000042",
            "name": "王小明" if chinese else "Alex Morgan",
            "locale": locale,
            "timezone": "Asia/Shanghai" if chinese else "Europe/London",
        },
        products=[
            {
                "id": pid,
                "name": name,
                "category": category,
                "brand": brand,
                "price_cents": price,
                "url": f"https://shop.example/p/{pid}",
                "reason": reason,
            }
            for pid, name, category, brand, price, reason in _SAMPLE_PRODUCTS[key]
        ],
        coupon=(
            {
                "code": "CB-7KQ4M9XH2P",
                "percent_off": 20,
                "min_order_cents": 9900,
                "expires_at": issued + timedelta(days=14),
                "valid_days": 14,
            }
            if with_coupon
            else None
        ),
        campaign={"name": "winback", "variant": "coupon"},
        shop={
            "name": "Demo Shop",
            "base_url": "https://shop.example",
            "postal_address": "1 Example Road, Example City",
            "currency": "CNY",
            "timezone": "Asia/Shanghai",
        },
        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
        locale=locale,
    )
