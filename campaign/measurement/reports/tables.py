"""The report's tables for people and for spreadsheets, built once for every reader.

``campaign report --html`` and the console's results page both draw these tables
(:func:`table_html`) and the console offers each as a CSV file (:func:`table_csv`):
rates as percentages, differences of rates in percentage points with their 95%
intervals beside them, money in the shop currency. A CSV carries the same rows as
plain values (rates as fractions, money in major units, each interval bound in its own
column) so a spreadsheet can compute with them.

Pure: frames in, text out. Labels are English; ``translate`` (the console's gettext)
turns them into the reader's language, and ``locale`` formats the numbers.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from babel.numbers import format_decimal

from campaign.common.money import format_amount, format_money, format_plain, minor_digits
from campaign.measurement.reports.data import ALL, FUNNEL_STEPS, CampaignReport

if TYPE_CHECKING:
    from campaign.uplift.report import TargetingReport

Translate = Callable[[str], str]


def N_(message: str) -> str:
    """Mark a label for the console's catalog; translated when drawn."""
    return message


@dataclass(frozen=True)
class Column:
    """One column: the frame's ``key`` (the CSV header), its label and how to show it.

    Kinds: ``text``, ``count``, ``share`` (0..1 as a percentage), ``points`` (a
    difference of shares, with ``low``/``high`` the keys of its interval), ``money``
    (minor units), ``interval`` (the bounds ``low``..``high`` of a difference of
    shares, in points), ``decimal`` (``digits`` decimals), ``date``, ``yesno``,
    ``word`` (a word of the product, translated).

    Kinds in the units of the row's ``outcome`` (``converted``/``visited``: a share of
    customers; ``revenue``: money in major units of the shop currency): ``level`` (a
    rate, or money per customer), ``effect`` (a difference: points, or signed money;
    with its ``low``/``high`` interval beside it) and ``per_1000`` (per 1,000 messages:
    a signed count with one decimal, or signed money; interval beside it when given).
    """

    key: str
    label: str
    kind: str = "text"
    low: str | None = None
    high: str | None = None
    digits: int = 3


@dataclass(frozen=True)
class Table:
    """A titled table of a report: its ``name`` (the CSV file's), columns and rows."""

    name: str
    title: str
    columns: list[Column]
    frame: pd.DataFrame = field(repr=False)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _signed(value: float, locale: str) -> str:
    return str(format_decimal(value * 100, format="+#,##0.0;-#,##0.0", locale=locale))


def _signed_money(major: float, currency: str, locale: str) -> str:
    minor = float(major) * 10 ** minor_digits(currency)
    text = format_money(abs(minor), currency, locale.replace("-", "_"))
    return ("-" if minor < 0 else "+") + text


def _in_outcome(column: Column, row: Any, value: float, *, currency: str, locale: str,
                translate: Translate) -> str:
    """A ``level``/``effect``/``per_1000`` figure in the units of the row's outcome."""
    revenue = row.get("outcome") == "revenue"
    if column.kind == "level":
        if revenue:
            return format_money(value * 10 ** minor_digits(currency), currency,
                                locale.replace("-", "_"))
        return str(format_decimal(value * 100, format="#,##0.0", locale=locale)) + "%"

    def one(number: float) -> str:
        if revenue:
            return _signed_money(number, currency, locale)
        if column.kind == "per_1000":
            return str(format_decimal(number, format="+#,##0.0;-#,##0.0", locale=locale))
        return _signed(number, locale)

    text = one(value)
    if column.kind == "effect" and not revenue:
        text = translate(N_("%(value)s pts")) % {"value": text}
    if column.low and column.high and not _missing(row[column.low]) \
            and not _missing(row[column.high]):
        text += f" [{one(float(row[column.low]))}, {one(float(row[column.high]))}]"
    return text


def shown(column: Column, row: Any, *, currency: str, locale: str = "en",
          translate: Translate = str) -> str:
    """One cell for people (see :class:`Column` for the kinds); ``n/a`` when missing."""
    value = row[column.key]
    if _missing(value):
        return translate(N_("n/a"))
    if column.kind in ("level", "effect", "per_1000"):
        return _in_outcome(column, row, float(value), currency=currency, locale=locale,
                           translate=translate)
    if column.kind == "word":
        return translate(_WORDS.get(str(value), str(value)))
    if column.kind == "count":
        return str(format_decimal(int(value), locale=locale))
    if column.kind == "share":
        return str(format_decimal(float(value) * 100, format="#,##0.0", locale=locale)) + "%"
    if column.kind == "interval":
        if _missing(row[column.high]):
            return translate(N_("n/a"))
        low, high = _signed(float(value), locale), _signed(float(row[column.high]), locale)
        return f"[{low}, {high}]"
    if column.kind == "points":
        text = translate(N_("%(value)s pts")) % {"value": _signed(float(value), locale)}
        if column.low and column.high and not _missing(row[column.low]):
            low, high = _signed(float(row[column.low]), locale), _signed(
                float(row[column.high]), locale)
            text += f" [{low}, {high}]"
        return text
    if column.kind == "money":
        return format_money(value, currency, locale.replace("-", "_"))
    if column.kind == "decimal":
        pattern = "#,##0." + "0" * column.digits
        return str(format_decimal(float(value), format=pattern, locale=locale))
    if column.kind == "date":
        return f"{value:%Y-%m-%d}" if isinstance(value, datetime | pd.Timestamp) else str(value)
    if column.kind == "yesno":
        return translate(N_("yes")) if value else translate(N_("no"))
    if value == ALL:
        return translate(N_("(all)"))
    return str(value)


def per_thousand(value: float | None, outcome: str, currency: str) -> str:
    """A figure per 1,000 messages or customers, signed: money in ``currency`` for the
    revenue outcome (major units), else a count with one decimal; ``n/a`` when missing."""
    if _missing(value):
        return "n/a"
    assert value is not None
    if outcome == "revenue":
        sign = "+" if value >= 0 else "-"
        minor = abs(value) * 10 ** minor_digits(currency)
        return f"{sign}{currency} {format_plain(minor, currency)}"
    return f"{value:+,.1f}"


def _plain(column: Column, value: Any, currency: str) -> Any:
    """One CSV cell: fractions and counts as they are, money in major units."""
    if _missing(value):
        return ""
    if column.kind == "money":
        return format_amount(round(float(value)), currency)
    if column.kind == "date" and isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return value


# Words of the product shown as cells (``word`` columns), marked for the catalog.
_WORDS = {
    "converted": N_("conversions"), "visited": N_("visits"), "revenue": N_("revenue"),
    "tree": N_("readable tree"), "boosting": N_("gradient boosting"),
}

_FUNNEL_LABELS = {
    "planned": N_("planned"), "sent": N_("sent"), "delivered": N_("delivered"),
    "opened": N_("opened"), "clicked": N_("clicked"), "redeemed": N_("redeemed"),
    "converted": N_("converted"),
}


def report_tables(report: CampaignReport | None, history: pd.DataFrame) -> list[Table]:
    """The report's tables, in page order: uplift, revenue, funnel, variants, models
    (a table only when it has rows)."""
    tables: list[Table] = []
    if report is not None and not report.uplift.empty:
        tables.append(Table("uplift", N_("Conversion uplift"), [
            Column("campaign", N_("campaign")), Column("variant", N_("variant")),
            Column("n_treatment", N_("treated"), "count"),
            Column("n_control", N_("held out"), "count"),
            Column("conv_treatment", N_("converted (treated)"), "share"),
            Column("conv_control", N_("converted (held out)"), "share"),
            Column("uplift", N_("uplift [interval at 95%]"), "points", "uplift_low", "uplift_high"),
            Column("uplift_always_low", N_("always-valid interval (pts)"), "interval",
                   "uplift_always_low", "uplift_always_high"),
            Column("p_value", N_("p"), "decimal", digits=3),
            Column("churn_treatment", N_("churned (treated)"), "share"),
            Column("churn_control", N_("churned (held out)"), "share"),
        ], report.uplift))
        tables.append(Table("revenue", N_("Revenue"), [
            Column("campaign", N_("campaign")), Column("variant", N_("variant")),
            Column("revenue_per_user_treatment", N_("revenue per treated customer"), "money"),
            Column("revenue_per_user_control", N_("revenue per held-out customer"), "money"),
            Column("incremental_revenue_gross_cents", N_("incremental revenue before coupons"),
                   "money"),
            Column("coupon_cost_cents", N_("coupon discounts"), "money"),
            Column("incremental_revenue_cents", N_("incremental revenue"), "money"),
        ], report.uplift))
    if report is not None and not report.funnel.empty:
        tables.append(Table("funnel", N_("Funnel"), [
            Column("campaign", N_("campaign")), Column("variant", N_("variant")),
            Column("held_out", N_("held out"), "count"),
            *[Column(step, _FUNNEL_LABELS.get(step, step), "count") for step in FUNNEL_STEPS],
        ], report.funnel))
    if report is not None and not report.arms.empty:
        tables.append(Table("variants", N_("Variants"), [
            Column("campaign", N_("campaign")), Column("variant", N_("variant")),
            Column("successes", N_("conversions"), "count"),
            Column("failures", N_("no conversion"), "count"),
            Column("posterior_mean", N_("posterior conversion rate"), "share"),
            Column("next_share", N_("share of the next run"), "share"),
        ], report.arms))
    if report is not None and report.targeting:
        tables.extend(targeting_tables(report.targeting))
    if not history.empty:
        tables.append(model_versions_table(history))
    return tables


def model_versions_table(history: pd.DataFrame) -> Table:
    """The churn model's versions over time (:func:`...data.model_history`)."""
    return Table("models", N_("Churn model versions over time"), [
        Column("version", N_("version")), Column("as_of", N_("as of"), "date"),
        Column("active", N_("active"), "yesno"), Column("split", N_("split")),
        Column("roc_auc", N_("ROC AUC"), "decimal"),
        Column("recency_roc_auc", N_("recency ROC AUC"), "decimal"),
        Column("brier", N_("Brier score"), "decimal"),
        Column("churn_rate", N_("churn rate"), "share"),
        Column("training_rows", N_("training rows"), "count"),
    ], history)


def uplift_versions_table(history: pd.DataFrame) -> Table:
    """The uplift models' versions over time (``campaign.uplift.report.uplift_history``):
    the Qini coefficient of the chosen model and of risk targeting on held-back rows."""
    return Table("uplift_models", N_("Uplift model versions over time"), [
        Column("version", N_("version")), Column("campaign", N_("campaign")),
        Column("as_of", N_("as of"), "date"), Column("active", N_("active"), "yesno"),
        Column("outcome", N_("outcome"), "word"), Column("chosen", N_("model"), "word"),
        Column("qini", N_("Qini coefficient"), "decimal"),
        Column("risk_qini", N_("Qini of risk targeting"), "decimal"),
    ], history)


def targeting_tables(targeting: list[TargetingReport]) -> list[Table]:
    """Whom to message: the gain of targeting by predicted uplift over targeting by
    risk at the same number of messages, and the uplift by decile of predicted uplift,
    every campaign's active uplift model in one table each (measured on the experiment
    rows the model did not see)."""
    gains, deciles = [], []
    for t in targeting:
        known = {"campaign": t.campaign, "version": t.version, "chosen": t.chosen}
        gains.append(t.gain.assign(**known))
        deciles.append(t.deciles.assign(**known, outcome=t.outcome))
    return [
        Table("targeting", N_("Whom to message: by predicted uplift instead of by risk, "
                              "per 1,000 messages"), [
            Column("campaign", N_("campaign")),
            Column("version", N_("uplift model version"), "count"),
            Column("share", N_("top share messaged"), "share"),
            Column("outcome", N_("outcome"), "word"),
            Column("by_uplift", N_("by predicted uplift"), "per_1000"),
            Column("by_risk", N_("by risk"), "per_1000"),
            Column("gain", N_("gain [interval at 95%]"), "per_1000", "low", "high"),
        ], pd.concat(gains, ignore_index=True)),
        Table("deciles", N_("Uplift by decile of predicted uplift"), [
            Column("campaign", N_("campaign")),
            Column("chosen", N_("model"), "word"),
            Column("decile", N_("decile"), "count"),
            Column("customers", N_("customers"), "count"),
            Column("treated", N_("treated"), "count"),
            Column("held_out", N_("held out"), "count"),
            Column("predicted", N_("predicted uplift"), "effect"),
            Column("treated_rate", N_("outcome (treated)"), "level"),
            Column("control_rate", N_("outcome (held out)"), "level"),
            Column("uplift", N_("measured uplift [interval at 95%]"), "effect", "low", "high"),
        ], pd.concat(deciles, ignore_index=True)),
    ]


_TEXT = ("text", "date", "word")
_NUM = ' class="num"'


def table_html(table: Table, *, currency: str, locale: str = "en",
               translate: Translate = str, csv_href: str | None = None) -> str:
    """The table as an HTML ``<table>`` with its title (and a CSV link when given)."""
    e = html.escape
    label = translate(N_("CSV"))
    link = f' <a class="csv" href="{e(csv_href)}" download>{e(label)}</a>' if csv_href else ""
    head = "".join(
        f"<th{_NUM if c.kind not in _TEXT else ''}>{e(translate(c.label))}</th>"
        for c in table.columns)
    body = "".join(
        "<tr>" + "".join(
            f"<td{_NUM if c.kind not in _TEXT else ''}>"
            f"{e(shown(c, row, currency=currency, locale=locale, translate=translate))}</td>"
            for c in table.columns) + "</tr>"
        for _, row in table.frame.iterrows()
    )
    return (f'<h3 id="table-{e(table.name)}">{e(translate(table.title))}{link}</h3>'
            f'<div class="scroll"><table class="report-table" data-table="{e(table.name)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def table_csv(table: Table, *, currency: str) -> str:
    """The table as CSV: the frame's column names, plain values, every interval bound in
    a column of its own (rates as fractions, money in major units)."""
    keys: list[Column] = []
    for column in table.columns:
        keys.append(column)
        for bound in (column.low, column.high):
            if bound and bound != column.key:
                keys.append(Column(bound, bound, column.kind))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in keys])
    for _, row in table.frame.iterrows():
        writer.writerow([_plain(c, row[c.key], currency) for c in keys])
    return out.getvalue()
