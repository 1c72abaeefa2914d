"""The report's targeting tables (whom to message): rows for people, CSV for
spreadsheets, the labels in Chinese; one builder for the console and the HTML page."""

from __future__ import annotations

import csv
import io
import math

import pandas as pd

from campaign.console import i18n
from campaign.measurement.reports.tables import table_csv, table_html, targeting_tables
from campaign.uplift.report import TargetingReport


def _targeting(campaign: str, outcome: str) -> TargetingReport:
    gain = pd.DataFrame([
        {"share": 0.1, "outcome": outcome, "by_uplift": 41.25, "by_risk": 12.5,
         "gain": 28.75, "low": 3.5, "high": 55.0},
        {"share": 0.3, "outcome": "revenue", "by_uplift": 1234.5, "by_risk": -10.0,
         "gain": 1244.5, "low": -20.25, "high": 2500.0},
    ])
    deciles = pd.DataFrame([
        {"decile": 1, "customers": 1204, "treated": 1000, "held_out": 204, "predicted": 0.081,
         "treated_rate": 0.15, "control_rate": 0.05, "uplift": 0.1, "low": 0.042,
         "high": 0.158},
        {"decile": 2, "customers": 1203, "treated": 1001, "held_out": 202, "predicted": -0.01,
         "treated_rate": 0.05, "control_rate": 0.06, "uplift": -0.01, "low": math.nan,
         "high": math.nan},
    ])
    return TargetingReport(campaign=campaign, outcome=outcome, version=7, chosen="tree",
                           rows=4000, curve=pd.DataFrame(), deciles=deciles, gain=gain)


def _cells(html: str) -> list[list[str]]:
    import re

    rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1])
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]


def test_the_gain_table_shows_counts_and_money_per_1000_messages_with_intervals() -> None:
    gain, deciles = targeting_tables([_targeting("winback", "converted")])
    assert (gain.name, deciles.name) == ("targeting", "deciles")
    rows = _cells(table_html(gain, currency="CNY"))
    assert rows[0] == ["winback", "7", "10.0%", "conversions", "+41.2", "+12.5",
                       "+28.8 [+3.5, +55.0]"]
    assert rows[1][3:] == ["revenue", "+CN¥1,234.50", "-CN¥10.00",
                           "+CN¥1,244.50 [-CN¥20.25, +CN¥2,500.00]"]


def test_the_decile_table_shows_points_and_rates_and_no_interval_when_missing() -> None:
    _, deciles = targeting_tables([_targeting("winback", "converted"),
                                   _targeting("care", "visited")])
    rows = _cells(table_html(deciles, currency="CNY"))
    assert len(rows) == 4 and [r[0] for r in rows] == ["winback"] * 2 + ["care"] * 2
    assert rows[0][1:] == ["readable tree", "1", "1,204", "1,000", "204", "+8.1 pts",
                           "15.0%", "5.0%", "+10.0 pts [+4.2, +15.8]"]
    assert rows[1][-1] == "-1.0 pts"


def test_a_revenue_model_shows_its_deciles_in_the_shop_currency() -> None:
    _, deciles = targeting_tables([_targeting("winback", "revenue")])
    rows = _cells(table_html(deciles, currency="JPY"))
    assert rows[0][6:] == ["+¥0", "¥0", "¥0", "+¥0 [+¥0, +¥0]"]


def test_the_csv_has_plain_values_and_each_bound_in_its_own_column() -> None:
    gain, deciles = targeting_tables([_targeting("winback", "converted")])
    rows = list(csv.DictReader(io.StringIO(table_csv(gain, currency="CNY"))))
    assert list(rows[0]) == ["campaign", "version", "share", "outcome", "by_uplift",
                             "by_risk", "gain", "low", "high"]
    assert rows[0]["share"] == "0.1" and rows[0]["outcome"] == "converted"
    assert float(rows[1]["gain"]) == 1244.5 and float(rows[1]["low"]) == -20.25
    decile_rows = list(csv.DictReader(io.StringIO(table_csv(deciles, currency="CNY"))))
    assert float(decile_rows[0]["uplift"]) == 0.1 and decile_rows[1]["low"] == ""


def test_the_targeting_headers_and_words_are_translated_to_chinese() -> None:
    gain, deciles = targeting_tables([_targeting("winback", "converted")])
    translate = i18n.gettext_for("zh-CN")
    text = table_html(gain, currency="CNY", locale="zh_Hans_CN", translate=translate) \
        + table_html(deciles, currency="CNY", locale="zh_Hans_CN", translate=translate)
    for english in ("Whom to message", "top share messaged", "by risk", "conversions",
                    "Uplift by decile", "predicted uplift", "readable tree", " pts"):
        assert english not in text, english
    assert "个百分点" in text
