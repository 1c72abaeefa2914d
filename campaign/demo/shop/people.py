"""The demo shop's customers: personas, locales, time zones, contact details, consent.

Everything a person could read is fictional: emails use the reserved ``example.*``
domains and phone numbers come from ranges that reach nobody (see docs/demo.md).
Pure: numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Persona:
    """How one kind of customer behaves.

    ``visits_per_day`` is the mean visit rate of an active customer; ``conversion`` the
    chance a visit ends in an order outside sales; ``sale_sensitivity`` the exponent of
    the sales boost on that chance; ``price_bias`` tilts choices towards cheap products
    (positive) or dear ones (negative); ``lifetime_days`` is the mean time from becoming
    active until the customer starts to fade away.
    """

    name: str
    share: float
    visits_per_day: float
    conversion: float
    views_per_visit: float
    extra_lines: float
    sale_sensitivity: float
    price_bias: float
    coupon_share: float
    lifetime_days: float


PERSONAS: tuple[Persona, ...] = (
    Persona("loyal", 0.10, 1 / 5, 0.22, 2.5, 0.6, 0.5, -0.4, 0.10, 1500),
    Persona("regular", 0.33, 1 / 8, 0.20, 2.2, 0.3, 0.8, 0.0, 0.08, 1100),
    Persona("bargain_hunter", 0.20, 1 / 11, 0.10, 3.0, 0.4, 2.0, 0.8, 0.45, 600),
    # One-timers buy on their first visit and are gone soon after (lifetime is short).
    Persona("one_timer", 0.15, 1 / 8, 0.0, 2.0, 0.1, 0.5, 0.2, 0.20, 18),
    Persona("window_shopper", 0.22, 1 / 9, 0.008, 3.0, 0.1, 1.0, 0.2, 0.05, 400),
)
PERSONA_INDEX = {p.name: i for i, p in enumerate(PERSONAS)}

# locale → (share, [(timezone, weight), ...]); a few customers live abroad, and a few
# use a regional locale the templates only know by its language (en-GB, zh-TW).
LOCALES: dict[str, tuple[float, list[tuple[str, float]]]] = {
    "zh-CN": (0.68, [("Asia/Shanghai", 0.95), ("Asia/Hong_Kong", 0.02),
                     ("America/Vancouver", 0.01), ("Europe/London", 0.01),
                     ("Australia/Sydney", 0.01)]),
    "en": (0.27, [("America/New_York", 0.25), ("America/Los_Angeles", 0.18),
                  ("America/Chicago", 0.10), ("Europe/London", 0.20),
                  ("Australia/Sydney", 0.10), ("Asia/Singapore", 0.12),
                  ("Europe/Berlin", 0.05)]),
    "en-GB": (0.03, [("Europe/London", 1.0)]),
    "zh-TW": (0.02, [("Asia/Taipei", 1.0)]),
}
# Time zones whose customers follow the Chinese sales calendar.
CN_MARKET_ZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei")
MISSING_LOCALE_SHARE = 0.01
MISSING_TIMEZONE_SHARE = 0.01

SURNAMES = (("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
            ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
            ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"))
GIVEN = (("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
         ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("洋", "yang"), ("艳", "yan"),
         ("勇", "yong"), ("军", "jun"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"),
         ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"), ("晓东", "xiaodong"),
         ("子涵", "zihan"), ("雨桐", "yutong"), ("浩然", "haoran"), ("欣怡", "xinyi"))
FIRST_NAMES = ("Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Mia",
               "Lucas", "Amelia", "James", "Harper", "Leo", "Grace", "Jack", "Chloe", "Owen",
               "Zoe", "Daniel", "Ruby", "Samuel", "Isla", "Henry")
LAST_NAMES = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker",
              "Clarke", "Wright", "Robinson", "Thompson", "Hughes", "Green", "Hall", "Lewis",
              "Martin", "Tan", "Lee", "Nguyen")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class Population:
    """The users frame (CSV contract) plus per-user arrays for the simulation.

    Arrays are aligned with ``users`` rows: ``persona`` (index into :data:`PERSONAS`),
    ``market`` (0 cn, 1 west), ``utc_offset_hours`` (standard, summer) per user,
    ``start_day`` (days after the history start when the user becomes active),
    ``churn_day`` (day the fading starts, ``inf`` for never within the simulation),
    ``fade_days`` (e-folding time of the fading), ``visit_rate``, ``conversion`` and
    ``affinity`` (users × categories, rows sum to 1).
    """

    users: pd.DataFrame
    persona: np.ndarray
    market: np.ndarray
    utc_offset_hours: np.ndarray
    start_day: np.ndarray
    churn_day: np.ndarray
    fade_days: np.ndarray
    visit_rate: np.ndarray
    conversion: np.ndarray
    affinity: np.ndarray


def _pick(rng: np.random.Generator, options: list[tuple[str, float]], n: int) -> np.ndarray:
    names = np.array([o[0] for o in options], dtype=object)
    weights = np.array([o[1] for o in options])
    return names[rng.choice(len(options), size=n, p=weights / weights.sum())]


def _offsets(timezones: np.ndarray) -> np.ndarray:
    """(standard, summer) UTC offsets in hours per user; 8 for a missing time zone."""
    table: dict[object, tuple[float, float]] = {}
    for tz in set(timezones.tolist()):
        if not tz:
            table[tz] = (8.0, 8.0)
            continue
        zone = ZoneInfo(str(tz))
        offsets: list[float] = []
        for month in (1, 7):
            delta = datetime(2026, month, 15, 12, tzinfo=zone).utcoffset() or timedelta(0)
            offsets.append(delta.total_seconds() / 3600)
        table[tz] = (offsets[0], offsets[1])
    return np.array([table[tz] for tz in timezones.tolist()])


def _tristate(rng: np.random.Generator, n: int, yes: float, missing: float) -> pd.Series:
    """A nullable boolean column: True with ``yes``, missing with ``missing``, else False."""
    draw = rng.random(n)
    values = pd.array(draw < yes, dtype="boolean")
    values[draw >= 1 - missing] = pd.NA
    return pd.Series(values)


def build_population(
    n_users: int,
    n_categories: int,
    category_shares: np.ndarray,
    history_start: datetime,
    history_days: int,
    rng: np.random.Generator,
) -> Population:
    """``n_users`` customers with personas, contact details and activity parameters.

    Frame columns (DESIGN.md ``users.csv``): user_id (``U000001``...), email, phone, name,
    locale, timezone (IANA), consent_email, consent_sms (nullable booleans: missing means
    no consent), created_at (UTC).
    """
    n = n_users
    shares = np.array([p.share for p in PERSONAS])
    persona = rng.choice(len(PERSONAS), size=n, p=shares / shares.sum())

    locale_names = list(LOCALES)
    locale_shares = np.array([LOCALES[name][0] for name in locale_names])
    locale_idx = rng.choice(len(locale_names), size=n, p=locale_shares / locale_shares.sum())
    locale = np.array(locale_names, dtype=object)[locale_idx]
    timezone = np.empty(n, dtype=object)
    for i, name in enumerate(locale_names):
        mask = locale_idx == i
        timezone[mask] = _pick(rng, LOCALES[name][1], int(mask.sum()))
    market = np.where(np.isin(timezone, CN_MARKET_ZONES), 0, 1)
    offsets = _offsets(timezone)

    # Names and addresses.
    chinese = np.char.startswith(locale.astype(str), "zh")
    surname = rng.integers(0, len(SURNAMES), n)
    given = rng.integers(0, len(GIVEN), n)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    domain = rng.integers(0, len(EMAIL_DOMAINS), n)
    number = rng.permutation(n) + 10
    names: list[str] = []
    emails: list[str] = []
    for i in range(n):
        if chinese[i]:
            names.append(SURNAMES[surname[i]][0] + GIVEN[given[i]][0])
            local = f"{GIVEN[given[i]][1]}.{SURNAMES[surname[i]][1]}"
        else:
            names.append(f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}")
            local = f"{FIRST_NAMES[first[i]]}.{LAST_NAMES[last[i]]}".lower()
        emails.append(f"{local}{number[i]}@{EMAIL_DOMAINS[domain[i]]}")
    email = pd.Series(emails, dtype=object)
    email[rng.random(n) < 0.03] = None

    digits = rng.integers(0, 10**8, n)
    phone = np.where(
        chinese,
        # +86 100...: Chinese mobile numbers start with 13-19, so these reach nobody.
        np.char.add("+86100", np.char.zfill(digits.astype(str), 8)),
        np.where(
            timezone == "Europe/London",
            # Ofcom's drama range 07700 900000-900999.
            np.char.add("+447700900", np.char.zfill((digits % 1000).astype(str), 3)),
            # North American 555-0100 to 555-0199 are reserved for fiction.
            np.char.add("+120255501", np.char.zfill((digits % 100).astype(str), 2)),
        ),
    ).astype(object)
    phone_series = pd.Series(phone, dtype=object)
    # No fictional range is known for Taiwan: those customers simply have no phone.
    has_phone = (rng.random(n) < np.where(chinese, 0.85, 0.55)) & (locale != "zh-TW")
    phone_series[~has_phone] = None

    consent_email = _tristate(rng, n, 0.62, 0.10)
    no_email = email.isna().to_numpy() & (rng.random(n) < 0.5)
    consent_email[no_email] = pd.NA
    consent_sms = _tristate(rng, n, 0.38, 0.15)
    consent_sms[~has_phone] = pd.NA

    locale_col = pd.Series(locale, dtype=object)
    locale_col[rng.random(n) < MISSING_LOCALE_SHARE] = None
    timezone_col = pd.Series(timezone, dtype=object)
    timezone_col[rng.random(n) < MISSING_TIMEZONE_SHARE] = None

    # Activity: a third were customers before the export window, the rest joined during
    # it, more of them lately (the shop grows).
    existing = rng.random(n) < 0.35
    joined = history_days * np.sqrt(rng.random(n)) * 0.985
    start_day = np.where(existing, 0.0, joined)
    tenure_before = rng.uniform(30, 900, n)
    created_day = np.where(existing, -tenure_before, start_day - rng.uniform(0, 0.02, n))

    lifetime = np.array([p.lifetime_days for p in PERSONAS])[persona]
    # Existing customers' fading clock started a little before the window, so a few are
    # already fading on day 0.
    clock = np.where(existing, -60.0, start_day)
    churn_day = clock + rng.exponential(lifetime)
    fade_days = rng.uniform(15, 40, n)

    rate = np.array([p.visits_per_day for p in PERSONAS])[persona] * rng.lognormal(0, 0.35, n)
    conversion = np.array([p.conversion for p in PERSONAS])[persona] * rng.lognormal(0, 0.35, n)

    # Category affinity: concentrated on a few departments, centred on their popularity.
    affinity = rng.dirichlet(np.full(n_categories, 1.0), size=n) ** 2.5
    affinity *= category_shares[None, :]
    affinity /= affinity.sum(axis=1, keepdims=True)

    created_at = pd.to_datetime(history_start) + pd.to_timedelta(
        np.round(created_day * 86400), unit="s"
    )
    users = pd.DataFrame(
        {
            "user_id": [f"U{i + 1:06d}" for i in range(n)],
            "email": email,
            "phone": phone_series,
            "name": names,
            "locale": locale_col,
            "timezone": timezone_col,
            "consent_email": consent_email,
            "consent_sms": consent_sms,
            "created_at": created_at,
        }
    )
    return Population(
        users=users,
        persona=persona,
        market=market,
        utc_offset_hours=offsets,
        start_day=start_day,
        churn_day=churn_day,
        fade_days=fade_days,
        visit_rate=rate,
        conversion=conversion,
        affinity=affinity,
    )
