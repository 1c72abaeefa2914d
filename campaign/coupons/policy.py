"""Coupon policy and coupon codes (pure; the random generator is an argument).

* :func:`choose_offer` turns the config's policy (percent off by churn-risk tier, a
  bonus for high-value customers, minimum order, validity) into an :class:`Offer`.
* :func:`new_coupon_code` draws an unguessable code such as ``CB-7KQ4M9XH2P`` from an
  alphabet without look-alikes (no 0/O, 1/I/L). Pass :class:`secrets.SystemRandom`
  in production and a seeded :class:`random.Random` in tests.
* :func:`coupons_issued_payload` is the body of the optional webhook that tells the
  shop's checkout about new codes (signed with :mod:`campaign.common.signing`).

Storing coupons (reserve, export, redeem) is :mod:`campaign.coupons.store`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaign.common.errors import InputError
from campaign.common.money import format_amount, parse_amount
from campaign.config import OfferConfig

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


def choose_offer(
    tier: str, high_value: bool, offer_config: OfferConfig, currency: str = "CNY"
) -> Offer:
    """The coupon for a customer in risk ``tier``; ``high_value`` adds the bonus.

    ``min_order`` is read in ``currency`` (the shop's), into its minor units.

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
        min_order_cents=_min_order(offer_config.min_order, currency),
        valid_days=offer_config.valid_days,
    )


def _min_order(text: str, currency: str) -> int:
    try:
        return parse_amount(text, currency)
    except ValueError as exc:
        raise InputError("offer.min_order", str(exc)) from None


def new_coupon_code(rng: random.Random, *, prefix: str = "CB", length: int = CODE_LENGTH) -> str:
    """A fresh code: ``<prefix>-`` and ``length`` symbols of :data:`CODE_ALPHABET`.

    10 symbols carry about 49.5 bits; with per-user redemption that is far beyond
    guessing. Uniqueness is enforced by the ``coupons.code`` constraint (see
    :func:`campaign.coupons.store.reserve_coupon`, which retries on the rare collision).
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
    coupons: Sequence[Mapping[str, Any]], *, issued_at: datetime, shop: str, currency: str = "CNY"
) -> bytes:
    """The JSON body telling the shop's checkout about new codes (pure).

    Each coupon mapping needs ``code``, ``user_id`` (the shop's own id),
    ``percent_off``, ``min_order_cents`` and ``expires_at`` (aware datetime). The body
    is ``{"type": "coupons.issued", "timestamp": ..., "shop": ..., "data": [...]}``
    with ``min_order`` as a decimal string in ``currency`` (``"99.00"`` CNY,
    ``"5000"`` JPY) and ``currency`` itself; sign it with
    :func:`campaign.common.signing.sign_headers`.
    """
    body = {
        "type": "coupons.issued",
        "timestamp": issued_at.isoformat(),
        "shop": shop,
        "currency": currency,
        "data": [
            {
                "code": str(c["code"]),
                "user_id": str(c["user_id"]),
                "percent_off": int(c["percent_off"]),
                "min_order": format_amount(int(c["min_order_cents"]), currency),
                "expires_at": c["expires_at"].isoformat(),
            }
            for c in coupons
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
