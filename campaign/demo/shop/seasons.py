"""The demo shop's calendar: weekly rhythm, yearly swell and the big sales days.

Two markets follow different calendars: customers in mainland-China time shop the
618 and Double 11 (11 November) festivals and quieten over Spring Festival; the
others shop Black Friday to Cyber Monday and the weeks before Christmas. Each market
gets one multiplier per day for visits and one for buying (the conversion of a visit).
Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

MARKETS = ("cn", "west")

# Monday first. Weekends are busier, midweek a little quieter.
WEEKDAY_VISITS = np.array([0.95, 0.93, 0.95, 0.97, 1.02, 1.10, 1.08])

# Local hour of day at which visits start (relative weights): lunch and late evening.
HOUR_WEIGHTS = np.array(
    [0.30, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 0.90, 1.00, 1.10, 1.20,
     1.40, 1.20, 1.00, 1.00, 1.00, 1.10, 1.30, 1.60, 1.90, 2.10, 1.80, 0.90]
)

# Spring Festival (first day of the lunar year) near the demo's history.
SPRING_FESTIVALS = (date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6))


@dataclass(frozen=True)
class Sale:
    """A sales event: a lead-in of ``lead_days`` at ``lead`` and the peak day(s)."""

    code: str
    start: date
    peak: date
    lead: float
    peak_level: float
    peak_days: int = 1


def _black_friday(year: int) -> date:
    november_first = date(year, 11, 1)
    first_thursday = november_first + timedelta(days=(3 - november_first.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def sales_for(market: str, years: range) -> list[Sale]:
    """The sales of ``market`` in ``years``; codes double as coupon codes (``DOUBLE11-2025``)."""
    found: list[Sale] = []
    for year in years:
        if market == "cn":
            found.append(Sale(f"618-{year}", date(year, 6, 1), date(year, 6, 18), 1.5, 3.0))
            found.append(
                Sale(f"DOUBLE11-{year}", date(year, 10, 24), date(year, 11, 11), 1.7, 4.5)
            )
            found.append(Sale(f"DOUBLE12-{year}", date(year, 12, 8), date(year, 12, 12), 1.2, 1.8))
        else:
            friday = _black_friday(year)
            found.append(
                Sale(f"BF{year}", friday - timedelta(days=7), friday, 1.3, 3.0, peak_days=4)
            )
            found.append(Sale(f"XMAS{year}", date(year, 12, 1), date(year, 12, 26), 1.4, 1.9))
            found.append(Sale(f"SINGLES{year}", date(year, 11, 9), date(year, 11, 11), 1.1, 1.4))
    return found


@dataclass(frozen=True)
class Calendar:
    """Per-day multipliers over the simulated days (day 0 is ``start``).

    ``visits`` and ``buying`` have shape (markets, days); ``sale_code`` holds, per market
    and day, the code of the sale running that day or "" outside sales; ``weekday`` is
    0 (Monday) to 6; ``month`` is 1 to 12.
    """

    start: date
    visits: np.ndarray
    buying: np.ndarray
    sale_code: np.ndarray
    weekday: np.ndarray
    month: np.ndarray


def build_calendar(start: date, days: int) -> Calendar:
    """Seasonality of both markets for ``days`` days from ``start`` (local calendar days)."""
    dates = [start + timedelta(days=i) for i in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    month = np.array([d.month for d in dates])
    day_of_year = np.array([d.timetuple().tm_yday for d in dates])
    # A mild winter swell on top of the sales (people shop more indoors).
    swell = 1.0 + 0.08 * np.cos(2 * np.pi * (day_of_year - 350) / 365.0)
    visits = np.empty((len(MARKETS), days))
    buying = np.empty((len(MARKETS), days))
    codes = np.full((len(MARKETS), days), "", dtype=object)
    years = range(start.year, dates[-1].year + 1)
    for m, market in enumerate(MARKETS):
        boost = np.ones(days)
        for sale in sales_for(market, years):
            for i, d in enumerate(dates):
                if sale.start <= d <= sale.peak + timedelta(days=sale.peak_days - 1):
                    level = sale.peak_level if d >= sale.peak else sale.lead
                    if level > boost[i]:
                        boost[i] = level
                        codes[m, i] = sale.code
        quiet = np.ones(days)
        if market == "cn":
            for festival in SPRING_FESTIVALS:
                for i, d in enumerate(dates):
                    if abs((d - festival).days) <= 7:
                        quiet[i] = 0.6
        base = swell * WEEKDAY_VISITS[weekday] * quiet
        # Sales bring people in, but mostly they make visitors buy.
        visits[m] = base * np.sqrt(boost)
        buying[m] = boost * quiet
    return Calendar(start, visits, buying, codes, weekday, month)
