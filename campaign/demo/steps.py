"""The steps of ``campaign demo``: a folder, a database, a generated shop, and what follows.

The demo is a list of :class:`DemoStep`. Each takes the :class:`DemoContext` (folder,
config, engine, the simulated clock) and returns a :class:`StepSummary` the command
prints. Every step must be safe to run again on a folder it already ran on: a
second ``campaign demo`` changes nothing. This module holds the set-up steps
(:data:`SETUP_STEPS`); :mod:`campaign.demo.loop` the closed loop; :mod:`campaign.demo.run`
puts them in order. To add a step, add one ``DemoStep`` to either tuple.

Orchestration layer: uses the database and the importer, never the CLI.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from campaign.common.errors import InputError
from campaign.common.money import format_plain
from campaign.config import Config, load_config
from campaign.db.migrate import current_revision, upgrade
from campaign.db.models import Event, EventType, Product, User
from campaign.demo.constants import LOOP_DAYS, SECOND_RUN_DAYS
from campaign.demo.shop import CSV_FILES, DEFAULT_SEED, DEMO_AS_OF, generate_shop, write_csv
from campaign.ingest import count_rows, import_csv

MARKER_FILE = "demo.json"
CONFIG_FILE = "config.toml"
DATA_DIR = "data"
# Bump when the generator's output changes: an old folder then asks for --fresh
# instead of silently mixing two different shops.
GENERATOR_VERSION = 2

ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


@contextmanager
def no_progress(_description: str, _total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress factory that reports nothing (tests, scripts)."""
    yield lambda _n: None


@dataclass(frozen=True)
class DemoSettings:
    """What a demo folder was made with, kept in its ``demo.json``."""

    users: int
    seed: int
    generator: int = GENERATOR_VERSION


@dataclass
class DemoContext:
    """Everything a step needs. ``as_of`` is the demo's fixed clock (UTC).

    ``facts`` lets a step leave results for later steps (e.g. the import reports).
    """

    folder: Path
    config: Config
    engine: Engine
    settings: DemoSettings
    as_of: datetime = DEMO_AS_OF
    progress: ProgressFactory = no_progress
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        """Where the shop's CSV files live."""
        return self.folder / DATA_DIR


@dataclass(frozen=True)
class StepSummary:
    """What a step did: a title, (label, value) lines to show, and whether it changed anything."""

    title: str
    lines: tuple[tuple[str, str], ...]
    changed: bool


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: a short name, what it does, and the function doing it."""

    name: str
    description: str
    run: Callable[[DemoContext], StepSummary]


# -- the folder -------------------------------------------------------------------------


def demo_config_text() -> str:
    """The demo's ``config.toml``: SQLite next to it, file channels, three campaigns."""
    clock = DEMO_AS_OF + timedelta(days=LOOP_DAYS)
    return f"""\
# Configuration of the demo shop, written once by `campaign demo` (it never overwrites it).
# Every key is documented in config.example.toml at the repository's root.

# The demo's history ends at {DEMO_AS_OF:%Y-%m-%dT%H:%M:%SZ}; its campaigns run then and
# their responses are simulated for {LOOP_DAYS} days. Commands run in this folder default
# to the end of that simulated time, so they see the shop as the demo left it.
[clock]
as_of = {clock:%Y-%m-%dT%H:%M:%SZ}

[shop]
name = "Demo Shop"
currency = "CNY"
postal_address = "1 Example Road, Example City"
base_url = "http://127.0.0.1:8080"
timezone = "Asia/Shanghai"
default_locale = "zh-CN"

[database]
# Relative to this file's folder.
url = "sqlite:///campaign.db"

[model]
horizon_days = 90
lookback_days = 365
# Low enough that a small demo (--users 300) can still train.
min_customers = 100
min_history_days = 180

# Messages are written as files under outbox/ instead of going to a provider.
[channels.email]
kind = "file"
medium = "email"
path = "outbox/email"
rate_per_second = 50.0

[channels.sms]
kind = "file"
medium = "sms"
path = "outbox/sms"
rate_per_second = 10.0

# Win back customers who are about to leave, with a coupon.
# Half of them are held out: a demo shop of 3,000 users has ~480 eligible winback
# customers, and only a large control group makes the measured uplift's 95% interval
# narrow enough to exclude zero (docs/measurement.md). Real shops use 0.05-0.2.
[[campaigns]]
name = "winback"
channels = ["email", "sms"]
holdout_share = 0.5
cooldown_days = 14
max_recipients = 5000
coupon_budget = 2000

[campaigns.schedule]
cron = "0 10 * * *"
timezone = "Asia/Shanghai"

[campaigns.audience]
min_risk = 0.5
max_risk = 1.0

[campaigns.offer]
percent_off_by_tier = {{ high = 20, medium = 10, low = 5 }}
high_value_bonus_percent = 5
min_order = "99.00"
valid_days = 14

[[campaigns.variants]]
name = "coupon"
template = "winback"
offer = true

# Keep in touch with customers whose risk is rising, without a discount.
[[campaigns]]
name = "care"
channels = ["email"]
holdout_share = 0.3
cooldown_days = 30

[campaigns.schedule]
cron = "0 11 * * 1"
timezone = "Asia/Shanghai"

[campaigns.audience]
min_risk = 0.3
max_risk = 0.5

[[campaigns.variants]]
name = "care"
template = "care"
offer = false

# A variant test: Thompson sampling shifts traffic to whichever converts better.
[[campaigns.variants]]
name = "care-coupon"
template = "winback"
offer = true

# A reminder without a coupon, which the shop tested 50/50 before (data/experiments.csv,
# imported with `campaign import experiments`). The demo trains its uplift model on that
# test and runs it {SECOND_RUN_DAYS} days after the other campaigns, to the 150 customers the
# model expects it to change most. Every other eligible customer is randomized too (the
# learning share), so the demo can measure what ranking by risk would have reached.
[[campaigns]]
name = "retain"
channels = ["email"]
holdout_share = 0.5
cooldown_days = 30
max_recipients = 150

[campaigns.schedule]
cron = "0 10 * * 3"
timezone = "Asia/Shanghai"

[campaigns.audience]
min_risk = 0.0
max_risk = 1.0
rank_by = "uplift"
# Kept in, so the comparison with ranking by risk covers everyone.
exclude_sleeping_dogs = false
learning_share = 1.0

[[campaigns.variants]]
name = "reminder"
template = "care"
offer = false
"""


def read_settings(folder: Path) -> DemoSettings | None:
    """The settings in ``folder``'s ``demo.json``, or None when it has none.

    Raises:
        InputError: the marker file exists but is not valid.
    """
    marker = folder / MARKER_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return DemoSettings(int(data["users"]), int(data["seed"]), int(data["generator"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(str(marker), f"not a demo marker file ({exc}); use --fresh") from None


def prepare_folder(
    folder: Path,
    *,
    users: int | None,
    seed: int | None,
    fresh: bool,
    default_users: int,
    default_seed: int = DEFAULT_SEED,
) -> tuple[DemoSettings, bool]:
    """Create (or with ``fresh`` recreate) the demo folder; returns (settings, created).

    An existing demo folder is reused as it is: its ``config.toml`` is never
    overwritten, and ``users``/``seed`` left as None mean "the folder's own". Only a
    folder holding a ``demo.json`` (or an empty one) is ever deleted.

    Raises:
        InputError: the folder exists but is not a demo folder, or it was made with
            other settings (``users``, ``seed``, generator version) and ``fresh`` is off.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(str(folder), "exists and is not a folder; choose another --dir")
    existing = read_settings(folder) if folder.is_dir() else None
    if folder.is_dir() and existing is None and any(folder.iterdir()):
        raise InputError(
            str(folder), f"exists and is not a demo folder (no {MARKER_FILE}); choose another --dir"
        )
    if fresh and folder.is_dir():
        shutil.rmtree(folder)
        existing = None
    if existing is not None:
        wanted = DemoSettings(
            users if users is not None else existing.users,
            seed if seed is not None else existing.seed,
        )
        if wanted != existing:
            raise InputError(
                str(folder),
                f"was made with --users {existing.users} --seed {existing.seed} (generator "
                f"v{existing.generator}); run again with --fresh to recreate it with "
                f"--users {wanted.users} --seed {wanted.seed}",
            )
        if not (folder / CONFIG_FILE).is_file():
            # Deleted by hand: write it again rather than fail; nothing else is touched.
            (folder / CONFIG_FILE).write_text(demo_config_text(), encoding="utf-8")
        return existing, False
    settings = DemoSettings(
        users if users is not None else default_users,
        seed if seed is not None else default_seed,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(demo_config_text(), encoding="utf-8")
    (folder / MARKER_FILE).write_text(
        json.dumps({"users": settings.users, "seed": settings.seed,
                    "generator": settings.generator}, indent=2) + "\n",
        encoding="utf-8",
    )
    return settings, True


def load_demo_config(folder: Path) -> Config:
    """The demo folder's configuration.

    Raises:
        ConfigError: the file was edited into something invalid.
    """
    return load_config(folder / CONFIG_FILE, environ={})


# -- steps ------------------------------------------------------------------------------


def migrate_step(context: DemoContext) -> StepSummary:
    """Bring the demo database to the newest schema."""
    before = current_revision(context.engine)
    upgrade(context.engine)
    after = current_revision(context.engine)
    state = f"{before or 'empty'} -> {after}" if before != after else f"at {after}"
    return StepSummary("Database", (("schema", state),), before != after)


def generate_step(context: DemoContext) -> StepSummary:
    """Generate the shop into ``data/*.csv`` unless the files are already there."""
    paths = {name: context.data_dir / f"{name}.csv"
             for name in (*CSV_FILES, "experiments", "truth")}
    changed = not all(path.is_file() for path in paths.values())
    if changed:
        with context.progress("Generating the shop", None):
            shop = generate_shop(context.settings.users, context.settings.seed)
            paths = write_csv(shop, context.data_dir)
    lines = tuple(
        (f"{name}.csv", f"{count_rows(paths[name]):,} rows") for name in CSV_FILES
    )
    return StepSummary("Generated shop" if changed else "Shop files (kept)", lines, changed)


def import_step(context: DemoContext) -> StepSummary:
    """Import users, products and events through the real importer (idempotent)."""
    lines: list[tuple[str, str]] = []
    changed = False
    for kind in CSV_FILES:
        path = context.data_dir / f"{kind}.csv"
        with context.progress(f"Importing {kind}", count_rows(path)) as advance:
            report = import_csv(
                context.engine, kind, path, progress=advance, now=context.as_of,
                currency=context.config.shop.currency,
            )
        context.facts[f"import_{kind}"] = report
        changed |= bool(report.inserted or report.updated)
        lines.append(
            (kind, f"{report.inserted:,} new, {report.updated:,} updated, "
                   f"{report.unchanged:,} unchanged")
        )
    return StepSummary("Import", tuple(lines), changed)


def shop_figures(engine: Engine, truth_path: Path | None, as_of: datetime) -> dict[str, Any]:
    """Headline figures of the shop in the database; read-only.

    Keys: users, customers (users with a purchase), products, events_by_type
    ({type: count}), first_event, last_event (UTC), revenue_cents, fading_share (share
    of customers whose fading started before ``as_of`` per ``truth.csv``; None without
    it).
    """
    with engine.connect() as connection:
        users = connection.scalar(select(func.count()).select_from(User)) or 0
        products = connection.scalar(select(func.count()).select_from(Product)) or 0
        by_type = dict(connection.execute(
            select(Event.type, func.count()).group_by(Event.type).order_by(Event.type)
        ).all())
        first_event, last_event = connection.execute(select(func.min(Event.ts),
                                                            func.max(Event.ts))).one()
        revenue = connection.scalar(
            select(func.coalesce(func.sum(Event.amount_cents), 0)).where(
                Event.type == EventType.PURCHASE
            )
        )
        customer_ids = connection.scalars(
            select(User.external_id).where(
                User.id.in_(select(Event.user_id).where(Event.type == EventType.PURCHASE))
            )
        ).all()
    fading: float | None = None
    if truth_path is not None and truth_path.is_file() and customer_ids:
        truth = pd.read_csv(truth_path, usecols=["user_id", "churn_started_at"], dtype=str)
        started = pd.to_datetime(truth.set_index("user_id")["churn_started_at"], utc=True)
        started = started.reindex(customer_ids)
        fading = float((started < pd.Timestamp(as_of)).mean())
    return {
        "users": users,
        "customers": len(customer_ids),
        "products": products,
        "events_by_type": {str(k): int(v) for k, v in by_type.items()},
        "first_event": first_event,
        "last_event": last_event,
        "revenue_cents": int(revenue or 0),
        "fading_share": fading,
    }


def summary_step(context: DemoContext) -> StepSummary:
    """Describe the shop now in the database."""
    figures = shop_figures(context.engine, context.data_dir / "truth.csv", context.as_of)
    context.facts["figures"] = figures
    events = figures["events_by_type"]
    cents = figures["revenue_cents"]
    lines = [
        ("users", f"{figures['users']:,}"),
        ("customers", f"{figures['customers']:,} (users with a purchase)"),
        ("products", f"{figures['products']:,}"),
        ("events", f"{sum(events.values()):,}: "
                   + ", ".join(f"{name} {count:,}" for name, count in events.items())),
    ]
    if figures["first_event"] is not None:
        lines.append(("history", f"{figures['first_event']:%Y-%m-%d} to "
                                 f"{figures['last_event']:%Y-%m-%d} (as of "
                                 f"{context.as_of:%Y-%m-%d})"))
    currency = context.config.shop.currency
    lines.append(("revenue", f"{currency} {format_plain(cents, currency)}"))
    if figures["fading_share"] is not None:
        lines.append(("fading customers", f"{figures['fading_share']:.0%} of customers had "
                                          "started to fade by the as-of date (truth.csv)"))
    return StepSummary("Shop", tuple(lines), False)


# The folder and the shop; the closed loop follows (campaign.demo.loop.LOOP_STEPS).
SETUP_STEPS: tuple[DemoStep, ...] = (
    DemoStep("migrate", "Create or upgrade the demo database", migrate_step),
    DemoStep("generate", "Generate the demo shop's CSV files", generate_step),
    DemoStep("import", "Import the shop through the CSV importer", import_step),
    DemoStep("summary", "Summarise the shop", summary_step),
)
