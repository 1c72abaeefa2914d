"""Coupon policy and coupon codes (pure; the random generator is an argument).

* :func:`choose_offer` turns the config's policy (percent off by churn-risk tier, a
  bonus for high-value customers, minimum order, validity) into an :class:`Offer`.
* :func:`new_coupon_code` draws an unguessable code such as ``CB-7KQ4M9XH2P`` from an
  alphabet without look-alikes (no 0/O, 1/I/L). Pass :class:`secrets.SystemRandom`
  in production and a seeded :class:`random.Random` in tests.
* :func:`parse_money` reads decimal strings into integer minor units exactly.
* :func:`coupons_issued_payload` is the body of the optional webhook that tells the
  shop's checkout about new codes (signed with :mod:`campaign.delivery.signing`).

Storing coupons (reserve, export, redeem) is :mod:`campaign.coupons`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from campaign.config import OfferConfig
from campaign.errors import InputError

# 31 symbols: digits and capitals minus 0, O, 1, I and L, which people misread.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
MAX_PERCENT_OFF = 90
_CODE_SHAPE = re.compile(rf"^(?:[A-Z0-9]{{1,6}}-)?[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")


@dataclass(frozen=True)
class Offer:
    """What a coupon gives: whole percent off, minimum order (minor units), validity."""

    percent_off: int
    min_order_cents: int
    valid_days: int

    def expires_at(self, issued_at: datetime) -> datetime:
        """When a coupon issued at ``issued_at`` (aware, UTC) stops being valid."""
        return issued_at + timedelta(days=self.valid_days)


def parse_money(text: str, *, decimals: int = 2, source: str = "amount") -> int:
    """``"99.00"`` → ``9900``: a non-negative decimal string to integer minor units.

    Exact: more decimals than the currency has are refused rather than rounded.

    Raises:
        InputError: not a plain non-negative number, or too many decimals.
    """
    cleaned = text.strip()
    if not re.fullmatch(r"\d+(\.\d+)?", cleaned):
        raise InputError(source, f"{text!r} is not an amount like 99.00")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise InputError(source, f"{text!r} is not an amount") from None
    minor = value.scaleb(decimals)
    if minor != minor.to_integral_value():
        raise InputError(source, f"{text!r} has more than {decimals} decimals")
    return int(minor)


def format_minor_units(cents: int, *, decimals: int = 2) -> str:
    """``9900`` → ``"99.00"``: integer minor units to a plain decimal string (exact)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    if decimals == 0:
        return f"{sign}{cents}"
    whole, fraction = divmod(cents, 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def choose_offer(tier: str, high_value: bool, offer_config: OfferConfig) -> Offer:
    """The coupon for a customer in risk ``tier``; ``high_value`` adds the bonus.

    A tier the policy does not list gets the smallest configured discount: an
    unexpected tier never earns more than the policy promises. The total is capped
    at 90 percent.

    Raises:
        InputError: ``min_order`` is not a valid amount (config validation normally
            catches this first).
    """
    table = offer_config.percent_off_by_tier
    if tier in table:
        percent = table[tier]
    else:
        percent = min(table.values()) if table else 0
    if high_value:
        percent += offer_config.high_value_bonus_percent
    percent = max(0, min(percent, MAX_PERCENT_OFF))
    return Offer(
        percent_off=percent,
        min_order_cents=parse_money(offer_config.min_order, source="offer.min_order"),
        valid_days=offer_config.valid_days,
    )


def new_coupon_code(rng: random.Random, *, prefix: str = "CB", length: int = CODE_LENGTH) -> str:
    """A fresh code: ``<prefix>-`` and ``length`` symbols of :data:`CODE_ALPHABET`.

    10 symbols carry about 49.5 bits; with per-user redemption that is far beyond
    guessing. Uniqueness is enforced by the ``coupons.code`` constraint (see
    :func:`campaign.coupons.reserve_coupon`, which retries on the rare collision).
    """
    body = "".join(rng.choice(CODE_ALPHABET) for _ in range(length))
    return f"{prefix}-{body}" if prefix else body


def normalize_code(code: str) -> str:
    """A code as typed at a checkout (any case, spaces) in its stored form."""
    return "".join(code.split()).upper()


def looks_like_code(code: str) -> bool:
    """Whether ``code`` has the shape :func:`new_coupon_code` produces."""
    return bool(_CODE_SHAPE.match(normalize_code(code)))


def coupons_issued_payload(
    coupons: Sequence[Mapping[str, Any]], *, issued_at: datetime, shop: str, decimals: int = 2
) -> bytes:
    """The JSON body telling the shop's checkout about new codes (pure).

    Each coupon mapping needs ``code``, ``user_id`` (the shop's own id),
    ``percent_off``, ``min_order_cents`` and ``expires_at`` (aware datetime). The body
    is ``{"type": "coupons.issued", "timestamp": ..., "shop": ..., "data": [...]}``
    with ``min_order`` as a decimal string; sign it with
    :func:`campaign.delivery.signing.sign_headers`.
    """
    body = {
        "type": "coupons.issued",
        "timestamp": issued_at.isoformat(),
        "shop": shop,
        "data": [
            {
                "code": str(c["code"]),
                "user_id": str(c["user_id"]),
                "percent_off": int(c["percent_off"]),
                "min_order": format_minor_units(int(c["min_order_cents"]), decimals=decimals),
                "expires_at": c["expires_at"].isoformat(),
            }
            for c in coupons
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
