"""A seeded, realistic e-commerce history for the demo, the tests and the benchmarks.

``generate_shop(n_users, seed)`` simulates a shop's customers, catalogue and 540 days
of behaviour ending at :data:`DEMO_AS_OF`, and keeps the ground truth the data hides
(each user's persona and when their fading started). It also simulates the 90 days
*after* the as-of date, so the truth knows who really did buy again; those events are
kept apart in ``future_events`` and never written to the shop's CSV files.

Same arguments → identical frames. Pure: numpy and pandas, no database. See
docs/demo.md for what is generated and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from campaign.common.errors import InputError
from campaign.demo.constants import DEFAULT_SEED, DEFAULT_USERS, DEMO_AS_OF, MAX_USERS
from campaign.demo.shop.activity import PURCHASE, as_frame, first_visit_seconds, simulate
from campaign.demo.shop.catalogue import CATEGORIES, build_catalogue
from campaign.demo.shop.people import PERSONAS, build_population
from campaign.demo.shop.responsiveness import (
    EXPERIMENT_COLUMNS,
    past_experiment,
    purchase_state,
    responsiveness_types,
)
from campaign.demo.shop.seasons import build_calendar

HISTORY_DAYS = 540
# Simulated beyond the as-of date so the truth knows who bought again (never exported).
FUTURE_DAYS = 90
DEFAULT_PRODUCTS = 480

USER_COLUMNS = ("user_id", "email", "phone", "name", "locale", "timezone", "consent_email",
                "consent_sms", "created_at")
PRODUCT_COLUMNS = ("product_id", "name", "category", "brand", "price", "tags", "in_stock", "url")
EVENT_COLUMNS = ("event_id", "user_id", "type", "ts", "product_id", "order_id", "quantity",
                 "amount", "coupon_code")
# The files `campaign import` takes, in import order (users and products before events).
CSV_FILES: tuple[Literal["users"], Literal["products"], Literal["events"]] = (
    "users", "products", "events"
)


@dataclass(frozen=True)
class DemoShop:
    """A generated shop.

    ``users``, ``products`` and ``events`` have exactly the columns of DESIGN.md's CSV
    contract (:data:`USER_COLUMNS`, :data:`PRODUCT_COLUMNS`, :data:`EVENT_COLUMNS`);
    timestamps are UTC-aware, money is a decimal string ("129.00"), consent flags are
    nullable booleans (missing means no consent). ``truth`` has one row per user:
    user_id, persona, churn_started_at (UTC; NaT if the user never starts fading within
    the simulation, which runs 90 days past ``as_of``), orders_next_90d (orders placed
    in the 90 days after ``as_of``), responsiveness_draw (the hidden uniform draw of
    :mod:`campaign.demo.shop.responsiveness`) and responsiveness (the type it gives as
    of ``as_of``). ``future_events`` holds those later events in the events columns.
    ``experiments`` is the shop's past A/B test (:data:`EXPERIMENT_COLUMNS`, the
    ``campaign import experiments`` contract).
    """

    users: pd.DataFrame
    products: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    future_events: pd.DataFrame
    experiments: pd.DataFrame
    n_users: int
    seed: int
    as_of: datetime = DEMO_AS_OF

    @property
    def history_start(self) -> datetime:
        """The first instant of the exported history (UTC)."""
        return self.as_of - timedelta(days=HISTORY_DAYS)


def generate_shop(
    n_users: int = DEFAULT_USERS, seed: int = DEFAULT_SEED, *, n_products: int = DEFAULT_PRODUCTS
) -> DemoShop:
    """Simulate a shop of ``n_users`` customers and ``n_products`` products.

    Deterministic: the same arguments give identical frames. A default shop (3,000
    users) has roughly 300,000 events and takes a few seconds.

    Raises:
        InputError: ``n_users`` or ``n_products`` out of range.
    """
    if not 1 <= n_users <= MAX_USERS:
        raise InputError("demo shop", f"users must be between 1 and {MAX_USERS:,}", column="users")
    if not 20 <= n_products <= 100_000:
        raise InputError("demo shop", "products must be between 20 and 100,000",
                         column="products")
    # A fourth child stream for the responsiveness: spawn(4)'s first three children are
    # spawn(3)'s, so the shop itself is the same as before it existed.
    catalogue_rng, people_rng, activity_rng, response_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    start = DEMO_AS_OF - timedelta(days=HISTORY_DAYS)
    days = HISTORY_DAYS + FUTURE_DAYS
    catalogue = build_catalogue(n_products, catalogue_rng)
    counts = np.bincount(catalogue.category, minlength=len(CATEGORIES)).astype(float)
    population = build_population(
        n_users, len(CATEGORIES), counts / counts.sum(), start, HISTORY_DAYS, people_rng
    )
    calendar = build_calendar(start.date(), days)
    activity = simulate(population, catalogue, calendar, days, activity_rng)

    history_start = pd.Timestamp(start)
    cutoff = HISTORY_DAYS * 86_400
    past = activity.seconds < cutoff
    user_ids = population.users["user_id"]
    product_ids = catalogue.products["product_id"]
    events = as_frame(activity, past, user_ids, product_ids, history_start, 0)
    future = as_frame(activity, ~past, user_ids, product_ids, history_start, int(past.sum()))

    # Nobody acts before signing up: pull created_at before the first event if needed.
    users = population.users.copy()
    first = first_visit_seconds(activity, n_users)
    lead = people_rng.integers(60, 3600, n_users)
    earliest = history_start + pd.to_timedelta(np.where(np.isfinite(first), first, 0) - lead,
                                               unit="s")
    users["created_at"] = users["created_at"].where(
        ~np.isfinite(first) | (users["created_at"] <= earliest), earliest
    )

    in_future = ~past & (activity.kind == PURCHASE)
    orders_next = np.zeros(n_users, dtype=np.int64)
    future_orders = np.unique(
        np.stack([activity.user[in_future], activity.order[in_future]]), axis=1
    )
    np.add.at(orders_next, future_orders[0], 1)
    churn_at = history_start + pd.to_timedelta(
        np.round(np.where(population.churn_day < days, population.churn_day, 0) * 86_400),
        unit="s",
    )
    truth = pd.DataFrame(
        {
            "user_id": user_ids,
            "persona": np.array([p.name for p in PERSONAS], dtype=object)[population.persona],
            "churn_started_at": pd.Series(churn_at).where(population.churn_day < days),
            "orders_next_90d": orders_next,
        }
    )
    draw = response_rng.random(n_users)
    truth["responsiveness_draw"] = draw
    truth["responsiveness"] = responsiveness_types(
        purchase_state(events, user_ids, DEMO_AS_OF), draw)
    experiments = past_experiment(users, events, draw, response_rng, DEMO_AS_OF)
    return DemoShop(
        users=users.loc[:, list(USER_COLUMNS)],
        products=catalogue.products.loc[:, list(PRODUCT_COLUMNS)],
        events=events.loc[:, list(EVENT_COLUMNS)],
        truth=truth,
        future_events=future.loc[:, list(EVENT_COLUMNS)],
        experiments=experiments,
        n_users=n_users,
        seed=seed,
    )


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO 8601 UTC ("2026-01-02T03:04:05Z"), booleans as true/false."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            text = column.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            out[name] = text.where(column.notna(), None)
        elif column.dtype == bool or isinstance(column.dtype, pd.BooleanDtype):
            out[name] = column.map({True: "true", False: "false"}).astype(object)
    return out


def write_csv(shop: DemoShop, folder: Path) -> dict[str, Path]:
    """Write users.csv, products.csv, events.csv, experiments.csv (the import files)
    and truth.csv.

    Each file is written under a temporary name and renamed, so an interrupted write
    never leaves a half file behind. Returns {"users": path, ...}. Overwrites.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    frames = {"users": shop.users, "products": shop.products, "events": shop.events,
              "experiments": shop.experiments, "truth": shop.truth}
    for name, frame in frames.items():
        path = folder / f"{name}.csv"
        partial = folder / f".{name}.csv.partial"
        _csv_ready(frame).to_csv(partial, index=False, encoding="utf-8", lineterminator="\n")
        os.replace(partial, path)
        paths[name] = path
    return paths


__all__ = [
    "CSV_FILES",
    "DEMO_AS_OF",
    "DemoShop",
    "EVENT_COLUMNS",
    "EXPERIMENT_COLUMNS",
    "HISTORY_DAYS",
    "PRODUCT_COLUMNS",
    "USER_COLUMNS",
    "generate_shop",
    "write_csv",
]
