"""Pure: the report's charts as inline SVG (:mod:`campaign.measurement.reports.charts`),
drawn alike by the console's pages and ``campaign report --html``.

The funnel of each campaign, the conversion uplift of each campaign and variant with
its 95 % interval, and the models over time (churn ROC AUC per version beside the
recency baseline; uplift Qini per version beside risk targeting's).
"""

from __future__ import annotations

import pandas as pd

from campaign.measurement.reports.charts import bar_chart, interval_chart, line_chart
from campaign.measurement.reports.data import ALL, FUNNEL_STEPS


def _points(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def funnel_charts(funnel: pd.DataFrame) -> list[str]:
    """Per campaign (all variants): customers at each step, planned to converted."""
    rows = funnel[funnel["variant"] == ALL] if not funnel.empty else funnel
    return [bar_chart(f"Funnel of {row['campaign']}", list(FUNNEL_STEPS),
                      [float(row[step]) for step in FUNNEL_STEPS],
                      unit="customers in the treatment group",
                      format_value=lambda v: f"{v:,.0f}")
            for _, row in rows.iterrows()]


def uplift_chart(uplift: pd.DataFrame) -> str | None:
    """Conversion uplift in points with its 95 % interval, per campaign and variant
    (green: the interval lies above zero); None without a row to draw."""
    rows = uplift.dropna(subset=["uplift"]) if not uplift.empty else uplift
    if rows.empty:
        return None
    labels = [f"{r.campaign} · {'all' if r.variant == ALL else r.variant}"
              for r in rows.itertuples(index=False)]
    return interval_chart("Conversion uplift vs the holdout", labels,
                          rows["uplift"].tolist(), rows["uplift_low"].tolist(),
                          rows["uplift_high"].tolist(),
                          unit="percentage points, 95% interval", format_value=_points)


def churn_models_chart(history: pd.DataFrame) -> str | None:
    """ROC AUC of each churn model version on its forward holdout, beside the recency
    baseline; None without a measured version."""
    if history.empty or not history["roc_auc"].notna().any():
        return None
    labels = [f"v{v}" for v in history["version"]]
    return line_chart("Churn model ROC AUC per version", labels, {
        "tree": history["roc_auc"].tolist(),
        "recency baseline": history["recency_roc_auc"].tolist(),
    }, unit="ROC AUC, forward holdout", format_value=lambda v: f"{v:.3f}")


def uplift_models_chart(history: pd.DataFrame) -> str | None:
    """Qini coefficient of each uplift model version on held-back rows, beside risk
    targeting's; None without a measured version."""
    if history.empty or not history["qini"].notna().any():
        return None
    labels = [f"{c} v{v}" for c, v in zip(history["campaign"], history["version"],
                                          strict=True)]
    return line_chart("Uplift model Qini per version", labels, {
        "uplift model": history["qini"].tolist(),
        "risk targeting": history["risk_qini"].tolist(),
    }, unit="Qini coefficient, held-back rows", format_value=lambda v: f"{v:.3f}")
