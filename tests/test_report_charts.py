"""The inline SVG charts: they parse as XML, draw one bar or point per value, carry
an accessible title, and escape every label."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pandas as pd

from campaign.measurement.reports.charts import bar_chart, interval_chart, line_chart
from campaign.measurement.reports.data import ALL, FUNNEL_STEPS
from campaign.measurement.reports.report_charts import (
    churn_models_chart,
    funnel_charts,
    uplift_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def _parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("viewBox", "").startswith("0 0 360 ")
    return root


def test_a_bar_chart_has_a_bar_per_value_and_escapes_its_labels() -> None:
    svg = bar_chart("Funnel <of> A&B", ["<script>", "sent", "none"], [10.0, 5.0, None])
    root = _parsed(svg)
    assert root.find(f"{SVG}title").text == "Funnel <of> A&B"  # type: ignore[union-attr]
    assert len(root.findall(f"{SVG}rect[@class='bar']")) == 2
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<script>" in texts and "n/a" in texts and "<script>" not in svg
    widths = [float(r.get("width", 0)) for r in root.findall(f"{SVG}rect[@class='bar']")]
    assert widths[0] == 2 * widths[1]


def test_an_interval_chart_draws_points_error_bars_and_the_zero_line() -> None:
    svg = interval_chart("Uplift", ["a", "b", "c"], [0.04, -0.01, math.nan],
                         [0.01, -0.03, math.nan], [0.07, 0.01, math.nan],
                         format_value=lambda v: f"{v * 100:+.1f} pts")
    root = _parsed(svg)
    points = root.findall(f"{SVG}circle[@class='point']")
    assert len(points) == 2 and len(root.findall(f"{SVG}path[@class='interval']")) == 2
    assert points[0].get("fill") == "#1a7f37" and points[1].get("fill") == "#888888"
    zero = root.find(f"{SVG}line[@class='zero']")
    assert zero is not None
    # The zero line sits between the two intervals' ends, left of the first point.
    assert float(zero.get("x1", 0)) < float(points[0].get("cx", 0))
    assert "+4.0 pts" in svg


def test_a_line_chart_has_a_point_per_value_and_a_legend_per_series() -> None:
    svg = line_chart("AUC", ["v1", "v2", "v3"], {"tree": [0.8, 0.85, 0.9],
                                                "recency & co": [0.7, None, 0.72]})
    root = _parsed(svg)
    assert len(root.findall(f"{SVG}circle[@class='point']")) == 5
    assert len(root.findall(f"{SVG}path[@class='line']")) == 2
    assert "recency &amp; co" in svg


def test_the_report_charts_follow_the_report_frames() -> None:
    funnel = pd.DataFrame([{"campaign": "winback", "variant": ALL, "held_out": 3,
                            **{step: 100 - 10 * i for i, step in enumerate(FUNNEL_STEPS)}},
                           {"campaign": "winback", "variant": "coupon", "held_out": 3,
                            **{step: 1 for step in FUNNEL_STEPS}}])
    charts = funnel_charts(funnel)
    assert len(charts) == 1
    assert len(_parsed(charts[0]).findall(f"{SVG}rect[@class='bar']")) == len(FUNNEL_STEPS)
    uplift = pd.DataFrame([{"campaign": "winback", "variant": ALL, "uplift": 0.02,
                            "uplift_low": -0.01, "uplift_high": 0.05}])
    assert len(_parsed(uplift_chart(uplift) or "").findall(f"{SVG}circle")) == 1
    history = pd.DataFrame({"version": [1, 2], "roc_auc": [0.8, 0.82],
                            "recency_roc_auc": [0.7, 0.71]})
    assert len(_parsed(churn_models_chart(history) or "").findall(
        f"{SVG}circle[@class='point']")) == 4
    assert churn_models_chart(history.assign(roc_auc=math.nan)) is None
