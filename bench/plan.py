"""Benchmark: planning one campaign run for N eligible users vs raw Jinja2 rendering.

    .venv/bin/python bench/plan.py --users 100000

A seeded shop (users, products, purchase events, an active model with every user
scored above the campaign's min_risk) is generated once into a SQLite file under
``bench/.cache/`` and copied for each measurement, because a run writes. The run is
the real ``plan_run``: audience SQL, eligibility, holdout, variant, one recommender
fit + batch call, coupon policy and codes, rendering the winback email (subject,
HTML, text) in the user's locale, bulk inserts of messages and coupons, one commit.

The baseline, measured in the same process, renders the same three templates with
the same contexts through Jinja2 directly (``Template.render``, compiled once, the
contexts built beforehand). Prints ``name: value unit`` lines and the ratio
plan/render (goal: <= 3) in wall-clock and in CPU time; the CPU ratio is the one to
trust on a busy machine (both sides are single-threaded Python). ``--repeat N``
alternates the two measurements N times and keeps the best of each.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.common.links import unsubscribe_url  # noqa: E402
from campaign.config import load_config  # noqa: E402
from campaign.db.engine import make_engine  # noqa: E402
from campaign.db.migrate import upgrade  # noqa: E402
from campaign.planner import (
    content,  # noqa: E402
    plan_run,  # noqa: E402
)
from campaign.templating.context import first_name  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
N_PRODUCTS = 2_000
PURCHASES_PER_USER = 3

CONFIG = """
[shop]
name = "Bench Shop"
base_url = "https://shop.example"
default_locale = "en"
[database]
url = "sqlite:///{db}"
[templates]
dir = "{templates}"
[delivery]
frequency_cap = {{ email = 100 }}
[channels.email]
kind = "file"
medium = "email"
path = "out"
[[campaigns]]
name = "winback"
channels = ["email"]
holdout_share = 0.0
cooldown_days = 14
[campaigns.audience]
min_risk = 0.5
[[campaigns.variants]]
name = "coupon"
template = "winback"
offer = true
"""


def build_shop(path: Path, users: int, seed: int = 7) -> None:
    """Generate the shop into a migrated SQLite file (raw sqlite3 for speed)."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    created = "2025-01-01 00:00:00.000000"
    db.executemany(
        "INSERT INTO users (id, external_id, email, phone, name, locale, timezone, "
        "consent_email, consent_sms, created_at, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,'{}')",
        (
            (i, f"U{i:07d}", f"user{i}@example.com", f"+8613{i:09d}",
             f"王小{i}" if i % 2 else f"Alex Morgan{i}", "zh-CN" if i % 2 else "en",
             "Asia/Shanghai", 1, 1, created)
            for i in range(1, users + 1)
        ),
    )
    categories = [f"cat{c}" for c in range(40)]
    db.executemany(
        "INSERT INTO products (id, external_id, name, category, brand, price_cents, tags, "
        "in_stock, url, attributes) VALUES (?,?,?,?,?,?,'[]',1,?,'{}')",
        (
            (p, f"P{p:05d}", f"Product {p}", categories[p % 40], "Acme",
             1000 + (p * 37) % 50000, f"https://shop.example/p/P{p:05d}")
            for p in range(1, N_PRODUCTS + 1)
        ),
    )
    rows = []
    n = 0
    for user in range(1, users + 1):
        for _ in range(PURCHASES_PER_USER):
            n += 1
            # Zipf-ish popularity so item-item neighbours exist.
            product = min(N_PRODUCTS, int(rng.paretovariate(1.2)))
            ts = AS_OF - timedelta(days=rng.randint(60, 400))
            rows.append((user, product, "purchase", ts.strftime("%Y-%m-%d %H:%M:%S.000000"),
                         1, 1000 + product, f"b{n}"))
    db.executemany(
        "INSERT INTO events (user_id, product_id, type, ts, quantity, amount_cents, "
        "source_event_id) VALUES (?,?,?,?,?,?,?)",
        rows,
    )
    db.execute(
        "INSERT INTO model_versions (id, kind, trained_at, as_of, horizon_days, params, "
        "metrics, artifact, library_versions, active) VALUES "
        "(1, 'churn', ?, ?, 90, '{}', '{}', x'', '{}', 1)",
        ("2026-11-01 00:00:00.000000", "2026-11-01 00:00:00.000000"),
    )
    db.executemany(
        "INSERT INTO churn_scores (user_id, model_version_id, as_of, risk, tier, reason) "
        "VALUES (?, 1, '2026-11-01 00:00:00.000000', ?, ?, 'no purchase for 60+ days')",
        (
            (u, r, "high" if r >= 0.7 else "medium")
            for u in range(1, users + 1)
            for r in [0.5 + rng.random() * 0.5]
        ),
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def raw_render_seconds(
    config_path: Path, db_path: Path, users: int
) -> tuple[float, float, int]:
    """Render subject, HTML and text for every user with plain compiled templates.

    Returns (wall seconds, CPU seconds, output characters) of the rendering alone;
    the contexts (recommendations, coupons, unsubscribe links) are built beforehand.
    """
    config = load_config(config_path, environ={})
    renderer = content.Renderer(config, b"bench-key" * 4)
    env = renderer.env
    engine = make_engine(f"sqlite:///{db_path}")
    with engine.connect() as connection:
        picks = content.recommend(connection, config, {None: list(range(1, users + 1))}, AS_OF)
    engine.dispose()
    codes = content.CodeDrawer(random.Random(1), config.campaigns[0].offer.code_prefix)
    contexts = []
    for user in range(1, users + 1):
        locale = "zh-CN" if user % 2 else "en"
        name = f"王小{user}" if user % 2 else f"Alex Morgan{user}"
        coupon = content.make_coupon(
            config.campaigns[0].offer, "high", False, codes, NOW
        )
        contexts.append((locale, {
            "user": {"id": f"U{user:07d}", "name": name, "first_name": first_name(name),
                     "locale": locale, "timezone": "Asia/Shanghai"},
            "products": [dict(v) for v in renderer.views_for(picks.get(user, []), locale)],
            "coupon": {"code": coupon.code, "percent_off": coupon.percent_off,
                       "min_order_cents": coupon.min_order_cents,
                       "expires_at": coupon.expires_at.isoformat(),
                       "valid_days": coupon.valid_days},
            "campaign": {"name": "winback", "variant": "coupon"},
            "shop": renderer.shop,
            "unsubscribe_url": unsubscribe_url(
                config.shop.base_url, renderer.secret, f"U{user:07d}", "email"),
            "locale": locale,
        }))
    templates = {
        locale: [env.get_template(f"winback/{locale}/{f}")
                 for f in ("subject.txt", "email.html", "email.txt")]
        for locale in ("en", "zh-CN")
    }
    start, cpu = time.perf_counter(), time.process_time()
    size = 0
    for locale, context in contexts:
        for template in templates[locale]:
            size += len(template.render(context))
    return time.perf_counter() - start, time.process_time() - cpu, size


def plan_seconds(template_db: Path, work: Path, attempt: int) -> tuple[float, float, int]:
    """Plan the run on a fresh copy of the shop: (wall s, CPU s, queued messages)."""
    db = work / f"plan{attempt}.db"
    shutil.copyfile(template_db, db)
    config_path = work / f"config{attempt}.toml"
    config_path.write_text(CONFIG.format(db=db, templates=ROOT / "templates"))
    config = load_config(config_path, environ={})
    engine = make_engine(config.database_url())
    upgrade(engine)  # the cached shop may predate newer migrations
    start, cpu = time.perf_counter(), time.process_time()
    report = plan_run(engine, config, "winback", as_of=AS_OF, slot=AS_OF, now=lambda: NOW)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    db.unlink()
    return wall, cpu, report.counts.get("queued", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate raw render and planning N times; report the best")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    template_db = CACHE / f"plan_u{args.users}.db"
    if not template_db.exists():
        start = time.perf_counter()
        build_shop(template_db, args.users)
        print(f"setup_seconds: {time.perf_counter() - start:.1f} s")
    plans: list[tuple[float, float, int]] = []
    renders: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        render_db = work / "render.db"
        shutil.copyfile(template_db, render_db)
        render_config = work / "render.toml"
        render_config.write_text(CONFIG.format(db=render_db, templates=ROOT / "templates"))
        engine = make_engine(f"sqlite:///{render_db}")
        upgrade(engine)
        engine.dispose()
        for attempt in range(args.repeat):
            # Alternate, so both see the same share of a busy machine.
            renders.append(raw_render_seconds(render_config, render_db, args.users))
            plans.append(plan_seconds(template_db, work, attempt))
    plan_wall = min(p[0] for p in plans)
    plan_cpu = min(p[1] for p in plans)
    render_wall = min(r[0] for r in renders)
    render_cpu = min(r[1] for r in renders)
    print(f"users: {args.users} users")
    print(f"queued: {plans[0][2]} messages")
    print(f"plan_seconds: {plan_wall:.2f} s")
    print(f"plan_cpu_seconds: {plan_cpu:.2f} s")
    print(f"plan_rate: {args.users / plan_wall:.0f} users/s")
    print(f"render_seconds: {render_wall:.2f} s")
    print(f"render_cpu_seconds: {render_cpu:.2f} s")
    print(f"render_rate: {args.users / render_wall:.0f} users/s")
    print(f"render_output: {renders[0][2] / args.users / 1024:.1f} KiB/user")
    print(f"plan_vs_render: {plan_wall / render_wall:.2f} x (goal <= 3)")
    print(f"plan_vs_render_cpu: {plan_cpu / render_cpu:.2f} x (goal <= 3)")


if __name__ == "__main__":
    main()
