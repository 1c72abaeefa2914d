"""``name: value unit`` lines and Markdown tables of the results (worst split first)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from .evaluate import PRODUCT, Result
from .splits import HEADLINE


def _prefix(r: Result) -> str:
    scope = "" if r.scope == "-" else f".{r.scope}"
    return f"{r.dataset}.{r.task}.{r.split}{scope}"


def _fmt(value: float, digits: int = 4) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def lines(result: Result) -> list[str]:
    """The plain lines of one split and scope."""
    p = _prefix(result)
    out = [f"{p}.{'customers' if result.task == 'churn' else 'users'}: {result.population} users"]
    out += [f"{p}.{note}" for note in result.notes]
    for model, figures in result.figures.items():
        for metric, value in figures.items():
            out.append(f"{p}.{model}.{metric}: {_fmt(value)} ratio")
        if model in result.seconds:
            out.append(f"{p}.{model}.seconds: {result.seconds[model]:.1f} s")
    for model, reason in result.skipped.items():
        out.append(f"{p}.{model}.skipped: {reason}")
    if result.best is not None:
        h, b = result.headline, result.best
        out.append(f"{p}.product_vs_{b}.{h}: {_fmt(result.ratio, 3)} x")
        out.append(f"{p}.product_minus_{b}.{h}: {result.difference:+.4f} diff")
        out.append(f"{p}.product_minus_{b}.{h}.ci95_low: {result.interval[0]:+.4f} diff")
        out.append(f"{p}.product_minus_{b}.{h}.ci95_high: {result.interval[1]:+.4f} diff")
    return out


def _groups(results: Iterable[Result]) -> dict[tuple[str, str, str], list[Result]]:
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.task, r.scope), []).append(r)
    return groups


def _models(group: Sequence[Result]) -> list[str]:
    seen: dict[str, None] = {}
    for r in group:
        for m in r.figures:
            if m != PRODUCT:
                seen[m] = None
    return [*seen, PRODUCT] if any(PRODUCT in r.figures for r in group) else list(seen)


def _mean(group: Sequence[Result], model: str, metric: str) -> float:
    """Mean over the splits where the model has a figure (NaN where it has none)."""
    values = np.array([r.figures.get(model, {}).get(metric, np.nan) for r in group], dtype=float)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


def _complete(group: Sequence[Result], model: str, metric: str) -> bool:
    """Whether the model has a finite figure on every split of the group."""
    return all(math.isfinite(r.figures.get(model, {}).get(metric, math.nan)) for r in group)


def _ordered(group: Sequence[Result]) -> tuple[list[Result], list[Result]]:
    """Report splits worst first (lowest ratio to the best baseline), then tuning splits."""
    report = [r for r in group if r.role == "report"]
    report.sort(key=lambda r: r.ratio if math.isfinite(r.ratio) else -math.inf)
    return report, [r for r in group if r.role == "tuning"]


def summary_lines(results: Iterable[Result]) -> list[str]:
    """Per dataset, task and scope: the mean over report splits and the worst split."""
    out: list[str] = []
    for (dataset, task, scope), group in _groups(results).items():
        report, _ = _ordered(group)
        if not report:
            continue
        h = report[0].headline
        p = f"{dataset}.{task}" + ("" if scope == "-" else f".{scope}")
        means = {m: _mean(report, m, h) for m in _models(report)}
        for model, value in means.items():
            out.append(f"{p}.report_mean.{model}.{h}: {_fmt(value)} ratio")
        for model in means:
            if not _complete(report, model, h):
                out.append(f"{p}.report_mean.{model}.skipped: NaN on some splits")
        # The product's mean is compared with baselines that have every split.
        anchors = [m for m in means if m != PRODUCT and m not in report[0].diagnostics
                   and _complete(report, m, h)]
        if PRODUCT in means and anchors:
            best = max(anchors, key=means.__getitem__)
            ratio = means[PRODUCT] / means[best] if means[best] else float("inf")
            out.append(f"{p}.report_mean.product_vs_{best}.{h}: {_fmt(ratio, 3)} x")
        worst = report[0]
        if worst.best is not None:
            out.append(
                f"{p}.worst_split.{worst.split}.product_vs_{worst.best}.{h}: "
                f"{_fmt(worst.ratio, 3)} x"
            )
        headline = HEADLINE.get((dataset, task))
        for r in report:
            if r.split == headline and r.best is not None:
                out.append(f"{p}.headline.{r.split}.product_vs_{r.best}.{h}: {_fmt(r.ratio, 3)} x")
    return out


TITLES = {
    ("recommend", "repeat"): "repeat purchases allowed",
    ("recommend", "new"): "new items only",
    ("churn", "-"): "churn",
}


def _pair(first: float, second: float) -> str:
    return f"{_fmt(first, 3)} / {_fmt(second, 3)}"


def _row(r: Result, models: Sequence[str], h: str, second: str) -> str:
    """One split's table row: each model's two figures, then the comparison."""
    cells = []
    for m in models:
        f = r.figures.get(m)
        if f is None:
            cells.append("skipped" if m in r.skipped else "–")
        else:
            cells.append(_pair(f.get(h, math.nan), f.get(second, math.nan)))
    comparison = (
        [r.best, f"{_fmt(r.ratio, 3)}x",
         f"{r.difference:+.3f} [{r.interval[0]:+.3f}, {r.interval[1]:+.3f}]"]
        if r.best is not None else ["–", "–", "–"]
    )
    return "| " + " | ".join([r.split, r.role, str(r.population), *cells, *comparison]) + " |"


def markdown(results: Iterable[Result]) -> str:
    """One table per dataset, task and scope: report splits worst first, mean, tuning."""
    parts: list[str] = []
    for (dataset, task, scope), group in _groups(results).items():
        report, tuning = _ordered(group)
        models = _models(group)
        h = group[0].headline
        second = "pr_auc" if task == "churn" else h.replace("ndcg", "recall")
        parts.append(f"### {dataset}, {TITLES.get((task, scope), task)}: {h} / {second}\n")
        who = "customers" if task == "churn" else "users"
        header = ["split", "role", who, *models, "best baseline", "ratio",
                  "product − best [95% CI]"]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))

        for r in report:
            parts.append(_row(r, models, h, second))
        if report:
            means = []
            for m in models:
                flag = "" if _complete(report, m, h) else " (some NaN)"
                means.append(_pair(_mean(report, m, h), _mean(report, m, second)) + flag)
            parts.append("| **mean of report splits** | | | " + " | ".join(means) + " | | | |")
        for r in tuning:
            parts.append(_row(r, models, h, second))
        for r in group:
            for model, reason in r.skipped.items():
                parts.append(f"\n{model} on {r.split}: {reason}")
        parts.append("")
    return "\n".join(parts)
