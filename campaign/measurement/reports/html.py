"""A self-contained HTML report: funnel, uplift with its interval, risk, the tree, variants.

One file, no external assets: the funnel, uplift and model charts are inline SVG (the
console's too, :mod:`campaign.measurement.reports.report_charts`), the other plots
matplotlib figures embedded as base64 PNG, so the page can be mailed or archived as it
is. Reads the frames of :mod:`campaign.measurement.reports.data` and the active churn
model; writes only the file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.tree import plot_tree  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from campaign.churn.artifacts import model_key  # noqa: E402
from campaign.churn.registry import load_model  # noqa: E402
from campaign.churn.rules import churn_rules  # noqa: E402
from campaign.churn.scoring import latest_scores  # noqa: E402
from campaign.common.errors import CampaignError  # noqa: E402
from campaign.common.money import format_plain  # noqa: E402
from campaign.common.rules import Rule  # noqa: E402
from campaign.config import Config  # noqa: E402
from campaign.measurement.reports.data import (  # noqa: E402
    ALL,
    CampaignReport,
    campaign_report,
    model_history,
)
from campaign.measurement.reports.report_charts import (  # noqa: E402
    churn_models_chart,
    funnel_charts,
    uplift_chart,
)
from campaign.measurement.reports.tables import (  # noqa: E402
    per_thousand,
    report_tables,
    table_html,
)

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{padding:.3em .7em;
border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child,td:nth-child(2),
th:nth-child(2){text-align:left}h3{margin-top:1.5em}img{max-width:100%}.note{color:#666;font-size:.9em}
.good{color:#1a7f37;font-weight:bold}.flat{color:#888}
"""


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def risk_figure(scores: pd.DataFrame) -> str:
    """Histogram of the latest churn risk scores."""
    figure, ax = plt.subplots(figsize=(8, 3))
    ax.hist(scores["risk"], bins=20, range=(0, 1), color="#8a5a44")
    ax.set_xlabel("churn risk")
    ax.set_ylabel("customers")
    ax.set_title(f"Risk distribution ({len(scores):,} customers)")
    return _png(figure)


def tree_figures(pipeline: Any) -> tuple[str, str]:
    """The fitted decision tree itself, and its feature importances."""
    tree = pipeline.named_steps["tree"].tree_
    names = list(pipeline.named_steps["inputs"].columns_)
    depth = tree.get_depth()
    figure, ax = plt.subplots(figsize=(min(4 + 3.2 * 2 ** (depth - 1), 40), 2.2 * depth + 1))
    plot_tree(tree, feature_names=names, class_names=["stays", "churns"], filled=True,
              impurity=False, proportion=True, rounded=True, fontsize=8, ax=ax)
    tree_png = _png(figure)
    importance = pd.Series(tree.feature_importances_, index=names).sort_values()
    importance = importance[importance > 0]
    figure, ax = plt.subplots(figsize=(8, 1 + 0.35 * max(len(importance), 1)))
    ax.barh(importance.index, importance.to_numpy(), color="#44708a")
    ax.set_xlabel("importance (share of impurity reduction)")
    ax.set_title("Feature importances")
    return tree_png, _png(figure)


def posterior_figure(arms: pd.DataFrame) -> str:
    """Beta posterior densities of each variant's conversion rate."""
    campaigns = list(dict.fromkeys(arms["campaign"]))
    figure, axes = plt.subplots(len(campaigns), 1, figsize=(8, 2.6 * len(campaigns)),
                                squeeze=False)
    for ax, campaign in zip(axes[:, 0], campaigns, strict=True):
        rows = arms[arms["campaign"] == campaign]
        top = max(float(stats.beta.ppf(0.999, r.alpha, r.beta)) for r in rows.itertuples())
        x = np.linspace(0, min(1.0, top * 1.1), 400)
        for r in rows.itertuples(index=False):
            style = "-" if r.enabled else ":"
            ax.plot(x, stats.beta.pdf(x, r.alpha, r.beta), style,
                    label=f"{r.variant} ({r.successes}/{r.successes + r.failures})")
        ax.set_title(f"{campaign}: posterior conversion rate per variant")
        ax.set_xlabel("conversion rate")
        ax.set_yticks([])
        ax.legend(frameon=False)
    figure.tight_layout()
    return _png(figure)


def targeting_figure(curve: pd.DataFrame, outcome: str) -> str:
    """The Qini curve of the uplift model, of risk targeting and of random."""
    figure, ax = plt.subplots(figsize=(6, 3.5))
    share = curve["share"] * 100
    ax.plot(share, curve["uplift"], "o-", markersize=3, label="by predicted uplift")
    ax.plot(share, curve["risk"], "s--", markersize=3, label="by risk (recency)")
    ax.plot(share, curve["random"], ":", color="#888", label="random")
    ax.set_xlabel("customers messaged (% of the base, best first)")
    ax.set_ylabel(f"extra {_UNITS.get(outcome, outcome)} per 1,000 customers")
    ax.set_title("Qini curve on rows the model did not see")
    ax.legend(frameon=False)
    return _png(figure)


_UNITS = {"converted": "conversions", "visited": "visits", "revenue": "revenue"}


def _targeting_sections(targeting: list[Any], currency: str, tables: dict[str, str]) -> str:
    """Per campaign with an uplift model: the gain over risk and the curve; then the
    gain and decile tables of every campaign (the console's tables too)."""
    out = []
    for t in targeting:
        out.append(f"<h3>{html.escape(t.campaign)} (uplift version {t.version}, "
                   f"{html.escape(t.chosen)}, outcome {html.escape(t.outcome)}; "
                   f"{t.rows:,} held-back experiment rows)</h3>")
        for row in t.gain[t.gain["share"] == 0.3].itertuples(index=False):
            unit = _UNITS.get(row.outcome, row.outcome)
            out.append(
                f"<p>Messaging the top 30 % by predicted uplift instead of by risk would "
                f"have produced <b>{per_thousand(row.gain, row.outcome, currency)}</b> "
                f"{unit if row.outcome != 'revenue' else 'in revenue'} per 1,000 messages "
                f"[95 % interval {per_thousand(row.low, row.outcome, currency)}, "
                f"{per_thousand(row.high, row.outcome, currency)}].</p>")
        out.append(targeting_figure(t.curve, t.outcome))
    out.append(tables.get("targeting", "") + tables.get("deciles", ""))
    return "".join(out)


def _uplift_sentences(uplift: pd.DataFrame, currency: str) -> str:
    out = []
    for r in uplift[uplift["variant"] == ALL].itertuples(index=False):
        if math.isnan(r.uplift):
            out.append(f"<p><b>{html.escape(r.campaign)}</b>: not measurable yet.</p>")
            continue
        # "It works" only when the always-valid interval says so: this page is read
        # every day, and the fixed-horizon interval read daily claims effects that
        # are not there (campaign.experiments.uplift).
        verdict = "good" if r.uplift_always_low > 0 else "flat"
        out.append(
            f"<p><b>{html.escape(r.campaign)}</b>: {r.conv_treatment:.1%} of treated users "
            f"bought vs {r.conv_control:.1%} of the holdout: "
            f"<span class='{verdict}'>{r.uplift * 100:+.1f} points "
            f"[{r.uplift_low * 100:+.1f}, {r.uplift_high * 100:+.1f}]</span> (always-valid "
            f"[{r.uplift_always_low * 100:+.1f}, {r.uplift_always_high * 100:+.1f}]), p = "
            f"{r.p_value:.3g}. Incremental revenue {currency} "
            f"{format_plain(r.incremental_revenue_cents, currency)} after {currency} "
            f"{format_plain(r.coupon_cost_cents, currency)} of coupon discounts.</p>"
        )
    return "".join(out)


def _rules_html(title: str, rules: list[Rule]) -> str:
    items = "".join(f"<li>{html.escape(rule.text)}</li>" for rule in rules)
    return f"<h3>{html.escape(title)}</h3><ol class='rules'>{items}</ol>"


def render_html(
    config: Config,
    report: CampaignReport | None,
    *,
    scores: pd.DataFrame,
    pipeline: Any | None,
    history: pd.DataFrame,
    uplift_rules: list[tuple[str, list[Rule]]] | None = None,
) -> str:
    """The report page as one HTML string (pure apart from drawing); ``uplift_rules``:
    per active uplift model a title and its readable tree as rules."""
    currency = config.shop.currency
    shop = html.escape(config.shop.name)
    # The tables are the console's too (campaign.measurement.reports.tables).
    tables = {t.name: table_html(t, currency=currency) for t in report_tables(report, history)}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{shop}"
             f" campaign report</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(config.shop.name)}: campaign report</h1>"]
    if report is not None and not report.outcomes.empty:
        parts.append(
            f"<p class='note'>As of {report.now:%Y-%m-%d %H:%M} UTC. Conversion: a purchase "
            f"within {report.window_days} days of the send (held-out users: of the time they "
            f"would have been sent). Intent-to-treat: every user assigned to treatment counts."
            f" Churn: no purchase within {report.horizon_days} days.</p>"
        )
        parts.append("<h2>Did it work?</h2>" + _uplift_sentences(report.uplift, currency))
        parts.append(uplift_chart(report.uplift) or "")
        parts.append(tables.get("uplift", "") + tables.get("revenue", ""))
        parts.append("<h2>Funnel</h2>" + "".join(funnel_charts(report.funnel)))
        parts.append(tables.get("funnel", ""))
        if not report.arms.empty:
            parts.append("<h2>Variants</h2>" + posterior_figure(report.arms))
            parts.append(tables.get("variants", ""))
        for note in report.notes:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
    if report is not None and report.targeting:
        parts.append("<h2>Whom to message: uplift vs risk</h2>"
                     + _targeting_sections(report.targeting, currency, tables))
    if not scores.empty:
        parts.append("<h2>Churn risk</h2>" + risk_figure(scores))
    if pipeline is not None:
        tree_png, importance_png = tree_figures(pipeline)
        parts.append("<h2>The churn model</h2>" + importance_png + tree_png)
        parts.append(_rules_html("The tree as rules, riskiest leaf first",
                                 churn_rules(pipeline, currency)))
    for title, rules in uplift_rules or []:
        parts.append(_rules_html(title, rules))
    if not history.empty:
        parts.append("<h2>Model versions</h2>")
        parts.append(churn_models_chart(history) or "")
        parts.append(tables.get("models", ""))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(
    connection: Connection,
    config: Config,
    path: Path,
    *,
    now: datetime,
    campaign: str | None = None,
    report: CampaignReport | None = None,
    uplift_rules: list[tuple[str, list[Rule]]] | None = None,
) -> Path:
    """Build the report at ``now`` and write it to ``path`` (UTF-8); returns the path.

    Reads the database only; the file is the one write.
    """
    if report is None:
        report = campaign_report(connection, config, now=now, campaign=campaign)
    try:
        pipeline = load_model(connection, key=model_key(config.model)).pipeline
    except CampaignError:  # no model yet, or an unloadable one: the page goes without
        pipeline = None
    scores = latest_scores(connection, now)
    history = model_history(connection)
    text = render_html(config, report, scores=scores, pipeline=pipeline, history=history,
                       uplift_rules=uplift_rules)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
