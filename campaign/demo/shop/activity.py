"""The demo shop's behaviour: visits, searches, views, carts and orders, vectorised.

Each user's visits are a Poisson process whose rate is their persona's rate times the
market's calendar (weekday, season, sales) times their fading (1 until the fading
starts, then decaying exponentially until it stops). Visits are drawn by thinning, all
users at once. A visit shows products from one favourite department mostly, chosen by
popularity and the persona's price taste; some visits end in an order of one or more
lines. Pure: numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from campaign.demo.shop.catalogue import CATEGORIES, Catalogue
from campaign.demo.shop.people import PERSONA_INDEX, PERSONAS, Population
from campaign.demo.shop.seasons import HOUR_WEIGHTS, Calendar

DAY = 86_400
EVENT_TYPES = ("visit", "search", "view", "cart", "purchase")
VISIT, SEARCH, VIEW, CART, PURCHASE = range(len(EVENT_TYPES))
# Activity stops entirely this many e-folding times after the fading starts.
FADE_STOP = 3.0
MAX_VIEWS = 12
STAY_IN_DEPARTMENT = 0.75
ABANDONED_CART_SHARE = 0.07
SEARCH_SHARE = 0.35
GENERIC_COUPONS = ("SAVE10", "FREESHIP", "WELCOME10")
BARGAIN_COUPONS = ("SAVE20", "FLASH30")


@dataclass(frozen=True)
class Activity:
    """Simulated events as parallel arrays, sorted by time.

    ``seconds`` counts from the history start (UTC); ``product`` and ``order`` are row
    indices / order numbers, ``-1`` when absent; ``amount_cents`` is the line total of
    purchases (``-1`` otherwise); ``coupon`` holds codes or None.
    """

    user: np.ndarray
    kind: np.ndarray
    seconds: np.ndarray
    product: np.ndarray
    order: np.ndarray
    quantity: np.ndarray
    amount_cents: np.ndarray
    coupon: np.ndarray


def _sample_rows(cumulative: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per entry of ``rows`` from the row's cumulative distribution.

    The rows are laid end to end (row ``r`` spans ``(r, r + 1]``) so a single
    ``searchsorted`` serves every draw without a rows × columns temporary.
    """
    n_rows, width = cumulative.shape
    cum = cumulative.copy()
    cum[:, -1] = 1.0
    flat = (cum + np.arange(n_rows)[:, None]).ravel()
    position = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return np.minimum(position - rows * width, width - 1)


def _product_sampler(catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Flattened cumulative product weights per (persona, category) block.

    Block ``persona * n_categories + category`` spans ``(key, key + 1]``; the second
    array maps each flat position to a product row.
    """
    values: list[np.ndarray] = []
    products: list[np.ndarray] = []
    n_categories = len(CATEGORIES)
    for p, persona in enumerate(PERSONAS):
        for c in range(n_categories):
            rows = np.flatnonzero(catalogue.category == c)
            key = p * n_categories + c
            if len(rows) == 0:
                continue
            price = catalogue.price_cents[rows].astype(float)
            weight = catalogue.popularity[rows] * (price / np.median(price)) ** -persona.price_bias
            cum = np.cumsum(weight) / weight.sum()
            cum[-1] = 1.0
            values.append(key + cum)
            products.append(rows)
    return np.concatenate(values), np.concatenate(products)


def _visits(
    population: Population, calendar: Calendar, days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Visits by thinning: (user, local day, UTC seconds, fade level), sorted by user, time."""
    peak = float(calendar.visits.max())
    stop = np.minimum(days, population.churn_day + FADE_STOP * population.fade_days)
    span = np.clip(stop - population.start_day, 0.0, None)
    candidates = rng.poisson(population.visit_rate * peak * span)
    user = np.repeat(np.arange(len(span)), candidates)
    t = population.start_day[user] + rng.random(len(user)) * span[user]
    day = np.minimum(t.astype(np.int64), days - 1)
    since = t - population.churn_day[user]
    fade = np.where(since > 0, np.exp(-np.clip(since, 0, None) / population.fade_days[user]), 1.0)
    keep = rng.random(len(user)) < calendar.visits[population.market[user], day] / peak * fade
    user, day, fade = user[keep], day[keep], fade[keep]

    # Local time of day, then UTC through the user's offset (summer months use DST).
    hour_p = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    local = day * DAY + rng.choice(24, size=len(user), p=hour_p) * 3600
    local += rng.integers(0, 3600, len(user))
    summer = (calendar.month[day] >= 4) & (calendar.month[day] <= 10)
    offset = population.utc_offset_hours[user, summer.astype(int)]
    seconds = (local - offset * 3600).astype(np.int64)
    inside = (seconds >= 0) & (seconds < days * DAY - 3600)
    user, day, seconds, fade = user[inside], day[inside], seconds[inside], fade[inside]
    order = np.lexsort((seconds, user))
    return user[order], day[order], seconds[order], fade[order]


def simulate(
    population: Population, catalogue: Catalogue, calendar: Calendar, days: int,
    rng: np.random.Generator,
) -> Activity:
    """Every event of every user over ``days`` days from the calendar's start.

    Returns an :class:`Activity` sorted by time (ties: visit, search, view, cart,
    purchase). Orders are numbered 0, 1, ... in time order.
    """
    user, day, start, fade = _visits(population, calendar, days, rng)
    n_visits = len(user)
    if n_visits == 0:
        empty = np.array([], dtype=np.int64)
        return Activity(empty, empty, empty, empty, empty, empty, empty,
                        np.array([], dtype=object))
    persona = population.persona[user]
    market = population.market[user]

    # Does the visit end in an order? One-timers buy on their first visit only.
    first = np.ones(n_visits, dtype=bool)
    first[1:] = user[1:] != user[:-1]
    sensitivity = np.array([p.sale_sensitivity for p in PERSONAS])[persona]
    chance = (
        population.conversion[user] * calendar.buying[market, day] ** sensitivity * np.sqrt(fade)
    )
    chance = np.where(persona == PERSONA_INDEX["one_timer"], np.where(first, 0.95, 0.0), chance)
    buys = rng.random(n_visits) < np.clip(chance, 0.0, 0.9)

    # How many products the visit shows, and how many of them are ordered.
    views_mean = np.array([p.views_per_visit for p in PERSONAS])[persona]
    n_views = np.minimum(rng.geometric(1.0 / views_mean), MAX_VIEWS)
    extra = np.array([p.extra_lines for p in PERSONAS])[persona]
    n_lines = np.where(buys, 1 + rng.poisson(extra), 0)
    n_lines = np.minimum(n_lines, MAX_VIEWS)
    n_views = np.maximum(n_views, n_lines)

    # Views: mostly in the visit's department, sometimes wandering.
    n_categories = len(CATEGORIES)
    department = _sample_rows(np.cumsum(population.affinity, axis=1), user, rng)
    visit_of_view = np.repeat(np.arange(n_visits), n_views)
    view_user = user[visit_of_view]
    wander = rng.random(len(visit_of_view)) >= STAY_IN_DEPARTMENT
    view_category = department[visit_of_view].copy()
    view_category[wander] = _sample_rows(
        np.cumsum(population.affinity, axis=1), view_user[wander], rng
    )
    flat, flat_product = _product_sampler(catalogue)
    key = persona[visit_of_view] * n_categories + view_category
    position = np.searchsorted(flat, key + rng.random(len(key)), side="right")
    view_product = flat_product[np.minimum(position, len(flat) - 1)]
    first_view = np.cumsum(n_views) - n_views
    rank_in_visit = np.arange(len(visit_of_view)) - first_view[visit_of_view]
    gaps = rng.exponential(70.0, len(visit_of_view)).astype(np.int64) + 5
    view_seconds = start[visit_of_view] + 30 + _cumsum_within(gaps, first_view, n_views)

    # Order lines: the first products the visit showed, each product once per order.
    is_line = rank_in_visit < n_lines[visit_of_view]
    line_key = visit_of_view * len(catalogue.price_cents) + view_product
    _, unique_at = np.unique(line_key, return_index=True)
    once = np.zeros(len(line_key), dtype=bool)
    once[unique_at] = True
    is_line &= once
    line_visit = visit_of_view[is_line]
    line_product = view_product[is_line]
    consumable = np.array([c.consumable for c in CATEGORIES])[catalogue.category[line_product]]
    loyal = persona[line_visit] == PERSONA_INDEX["loyal"]
    quantity = 1 + rng.poisson(0.06 + 0.3 * consumable + 0.15 * loyal)
    quantity = np.minimum(quantity, 6)
    last_view = np.maximum.reduceat(view_seconds, first_view)
    paid_at = last_view + rng.integers(60, 600, n_visits)

    # Coupons, one per order: the running sale's code, else an everyday one.
    share = np.array([p.coupon_share for p in PERSONAS])[persona]
    sale = calendar.sale_code[market, day]
    on_sale = sale != ""
    coupon_p = np.clip(share * np.where(on_sale, 2.0, 1.0), 0, 0.9)
    uses = buys & (rng.random(n_visits) < coupon_p)
    everyday = np.array(GENERIC_COUPONS, dtype=object)[rng.integers(0, 3, n_visits)]
    bargain = np.array(BARGAIN_COUPONS, dtype=object)[rng.integers(0, 2, n_visits)]
    everyday = np.where(persona == PERSONA_INDEX["bargain_hunter"], bargain, everyday)
    everyday = np.where(persona == PERSONA_INDEX["loyal"], "VIP15", everyday)
    code = _where_or_none(uses, np.where(on_sale, sale, everyday))

    # Order numbers in time order.
    buyer_visits = np.flatnonzero(buys)
    order_of_visit = np.full(n_visits, -1)
    order_of_visit[buyer_visits[np.argsort(paid_at[buyer_visits], kind="stable")]] = np.arange(
        len(buyer_visits)
    )

    abandoned = ~buys[visit_of_view] & (rng.random(len(visit_of_view)) < ABANDONED_CART_SHARE)
    cart_rows = is_line | abandoned
    cart_quantity = np.ones(len(visit_of_view), dtype=np.int64)
    cart_quantity[is_line] = quantity
    searches = np.flatnonzero(rng.random(n_visits) < SEARCH_SHARE)

    n_carts = int(cart_rows.sum())
    blocks = [
        _block(user, VISIT, start),
        _block(user[searches], SEARCH, start[searches] + rng.integers(5, 40, len(searches))),
        _block(view_user, VIEW, view_seconds, product=view_product),
        _block(view_user[cart_rows], CART, view_seconds[cart_rows] + rng.integers(10, 60, n_carts),
               product=view_product[cart_rows], quantity=cart_quantity[cart_rows]),
        _block(user[line_visit], PURCHASE, paid_at[line_visit], product=line_product,
               order=order_of_visit[line_visit], quantity=quantity,
               amount_cents=catalogue.price_cents[line_product] * quantity,
               coupon=code[line_visit]),
    ]
    merged = [np.concatenate(column) for column in zip(*blocks, strict=True)]
    order = np.lexsort((merged[1], merged[0], merged[2]))
    return Activity(*(column[order] for column in merged))


def _block(
    user: np.ndarray,
    kind: int,
    seconds: np.ndarray,
    *,
    product: np.ndarray | None = None,
    order: np.ndarray | None = None,
    quantity: np.ndarray | None = None,
    amount_cents: np.ndarray | None = None,
    coupon: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """One event type's columns in :class:`Activity` order, absent ones filled in."""
    n = len(user)
    missing = np.full(n, -1, dtype=np.int64)
    return (
        user,
        np.full(n, kind, dtype=np.int64),
        seconds.astype(np.int64),
        missing if product is None else product,
        missing if order is None else order,
        np.zeros(n, dtype=np.int64) if quantity is None else quantity,
        missing if amount_cents is None else amount_cents,
        np.full(n, None, dtype=object) if coupon is None else coupon,
    )


def _cumsum_within(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting at each group start (groups are contiguous)."""
    total = np.cumsum(values)
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return total - np.repeat(before, lengths)


def first_visit_seconds(activity: Activity, n_users: int) -> np.ndarray:
    """Each user's first event time (seconds from the history start), ``inf`` if none."""
    first = np.full(n_users, np.inf)
    np.minimum.at(first, activity.user, activity.seconds.astype(float))
    return first


def as_frame(
    activity: Activity, mask: np.ndarray, users: pd.Series, products: pd.Series,
    history_start: pd.Timestamp, first_event_number: int,
) -> pd.DataFrame:
    """The rows of ``activity`` selected by ``mask`` in the ``events.csv`` contract.

    Columns: event_id (``E00000001``...), user_id, type, ts (UTC), product_id, order_id
    (``O0000001``...), quantity (nullable int; set on carts and purchases), amount (decimal
    string line total, purchases only), coupon_code.
    """
    n = int(mask.sum())
    numbers = np.arange(first_event_number, first_event_number + n)
    product = activity.product[mask]
    order = activity.order[mask]
    quantity = activity.quantity[mask]
    cents = activity.amount_cents[mask]
    product_ids = _where_or_none(product >= 0, products.to_numpy()[np.maximum(product, 0)])
    order_ids = _where_or_none(order >= 0, _labels("O", np.maximum(order, 0) + 1, 7))
    amount = _where_or_none(cents >= 0, _decimals(np.maximum(cents, 0)))
    return pd.DataFrame(
        {
            "event_id": _labels("E", numbers + 1, 8),
            "user_id": users.to_numpy()[activity.user[mask]],
            "type": np.array(EVENT_TYPES, dtype=object)[activity.kind[mask]],
            "ts": history_start + pd.to_timedelta(activity.seconds[mask], unit="s"),
            "product_id": product_ids,
            "order_id": order_ids,
            "quantity": _nullable(quantity),
            "amount": amount,
            "coupon_code": activity.coupon[mask],
        }
    )


def _where_or_none(condition: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``condition`` holds, else None (an object array)."""
    out = np.full(len(condition), None, dtype=object)
    out[condition] = np.asarray(values, dtype=object)[condition]
    return out


def _decimals(cents: np.ndarray) -> np.ndarray:
    """Integer cents as decimal strings: 12900 → "129.00"."""
    if len(cents) == 0:
        return np.array([], dtype=object)
    units = np.char.add((cents // 100).astype(str), ".")
    return np.char.add(units, np.char.zfill((cents % 100).astype(str), 2)).astype(object)


def _labels(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    if len(numbers) == 0:
        return np.array([], dtype=object)
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def _nullable(quantity: np.ndarray) -> pd.arrays.IntegerArray:
    values = pd.array(quantity, dtype="Int64")
    values[quantity <= 0] = pd.NA
    return values
