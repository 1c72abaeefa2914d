"""One split, end to end: cut, product through its CLI, baselines, figures, statistics.

Recommender scopes (the same users for every model of a scope):

* ``repeat``: targets = every item bought in (T, T + h]; the product runs with
  repurchase allowed; users with at least one event before T and one target.
* ``new``: what the user bought before T is removed from every model's list (before
  the cut to k for the baselines, after it for the product, which is asked with
  repurchase off and should return no such item: how many it did is printed) and
  from the targets; users with at least one new target.

MovieLens has only ``new`` (a rating is never repeated). Churn: customers = users
with a purchase in the ``lookback_days`` (365) before T; label 1 = no purchase in
(T, T + h]; the product's risk is the ``risk`` column of ``campaign score --output``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from . import baselines as bl
from .datasets import Shop
from .metrics import (
    bootstrap_mean_difference,
    bootstrap_metric_difference,
    per_user,
    pr_auc,
    roc_auc,
)
from .product import Product
from .splits import Cut

Log = Callable[[str], None]
PRODUCT = "product"


@dataclass
class Result:
    """One (split, scope): every model's figures and the product against the best anchor."""

    dataset: str
    task: str
    split: str
    role: str
    scope: str
    headline: str  # the metric the comparison is on: "ndcg@10" or "roc_auc"
    population: int
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    best: str | None = None
    ratio: float = float("nan")
    difference: float = float("nan")
    interval: tuple[float, float] = (float("nan"), float("nan"))
    diagnostics: tuple[str, ...] = ()  # figures shown but never "the best baseline"

    def baselines(self) -> list[str]:
        """Models that compete as anchors."""
        return [m for m in self.figures if m != PRODUCT and m not in self.diagnostics]


def _compare(result: Result, resamples: int,
             interval: Callable[[str, str], tuple[float, float]]) -> None:
    anchors = [m for m in result.baselines() if np.isfinite(result.figures[m][result.headline])]
    if PRODUCT not in result.figures or not anchors:
        return
    best = max(anchors, key=lambda m: result.figures[m][result.headline])
    ours, theirs = result.figures[PRODUCT][result.headline], result.figures[best][result.headline]
    result.best = best
    result.ratio = ours / theirs if theirs else float("inf")
    result.difference = ours - theirs
    if resamples:
        result.interval = interval(PRODUCT, best)


def _trim(lists: dict[str, list[str]], history: dict[str, set[str]], k: int
          ) -> tuple[dict[str, list[str]], int]:
    """Lists without the user's past purchases (top k), and how many entries went."""
    out, removed = {}, 0
    for user, items in lists.items():
        seen = history.get(user, set())
        kept = [i for i in items if i not in seen]
        removed += len(items) - len(kept)
        out[user] = kept[:k]
    return out, removed


def evaluate_recommend(
    shop: Shop,
    cut: Cut,
    database: Path,
    product: Product | None,
    *,
    k: int = 10,
    scopes: Sequence[str] = ("repeat", "new"),
    resamples: int = 1000,
    skip: Sequence[str] = (),
    log: Log = lambda _: None,
) -> list[Result]:
    """Every recommender model on one split, per scope (``skip``: baselines not run)."""
    if shop.kind == "ratings":
        scopes = [s for s in scopes if s == "new"]
    history = bl.histories(cut.train)
    future = cut.future.dropna(subset=["product_id"])
    bought_after = {u: set(items) for u, items in future.groupby("user_id")["product_id"]}
    targets = {
        "repeat": {u: t for u, t in bought_after.items() if u in history and t},
        "new": {
            u: t - history[u] for u, t in bought_after.items() if u in history and t - history[u]
        },
    }
    results = {}
    for scope in scopes:
        users = sorted(targets[scope])
        results[scope] = Result(shop.name, "recommend", cut.split.name, cut.split.role, scope,
                                f"ndcg@{k}", len(users))
    samples: dict[str, dict[str, np.ndarray]] = {scope: {} for scope in scopes}

    def record(scope: str, model: str, lists: dict[str, list[str]]) -> None:
        users = sorted(targets[scope])
        values = per_user(lists, targets[scope], users, k)
        samples[scope][model] = values["ndcg"]
        results[scope].figures[model] = {
            f"ndcg@{k}": float(values["ndcg"].mean()) if users else float("nan"),
            f"recall@{k}": float(values["recall"].mean()) if users else float("nan"),
        }

    everyone = sorted(set().union(*(targets[s] for s in scopes)))
    for model in bl.recommenders(shop, cut.as_of):
        name = model.name  # type: ignore[attr-defined]
        if name in skip:
            for scope in scopes:
                results[scope].skipped[name] = "not run (--skip)"
            continue
        started = time.perf_counter()
        try:
            model.fit(cut.train)  # type: ignore[attr-defined]
        except bl.Unavailable as exc:
            for scope in scopes:
                results[scope].skipped[name] = str(exc)
            log(f"{name}: skipped ({exc})")
            continue
        fitted = time.perf_counter() - started
        for scope in scopes:
            if scope == "new" and name == "buy_again":
                continue  # nothing to offer by construction
            started = time.perf_counter()
            lists = model.recommend(everyone, k, scope == "new")  # type: ignore[attr-defined]
            results[scope].seconds[name] = fitted + time.perf_counter() - started
            record(scope, name, lists)
        shown = [
            f"{s} {results[s].figures[name][f'ndcg@{k}']:.4f}"
            for s in scopes
            if name in results[s].figures
        ]
        log(f"{name}: ndcg@{k} {', '.join(shown)} ({fitted:.0f} s fit)")

    if product is not None:
        for scope in scopes:
            frame, seconds = product.recommend(
                database, cut.as_of, k, repeat=scope == "repeat", sections=shop.config
            )
            frame = frame.sort_values(["user_id", "rank"], kind="stable")
            lists = {u: list(items) for u, items in frame.groupby("user_id")["product_id"]}
            if scope == "new":
                lists, removed = _trim(lists, history, k)
                results[scope].notes.append(f"product_returned_past_purchases: {removed} items")
            returned = sum(1 for u in targets[scope] if lists.get(u))
            results[scope].notes.append(f"product_users_with_a_list: {returned} users")
            results[scope].seconds[PRODUCT] = seconds
            record(scope, PRODUCT, lists)
            figure = results[scope].figures[PRODUCT][f"ndcg@{k}"]
            log(f"product {scope}: ndcg@{k} {figure:.4f} ({seconds:.0f} s)")

    for scope in scopes:
        per = samples[scope]

        def interval(a: str, b: str, per: dict[str, np.ndarray] = per) -> tuple[float, float]:
            return bootstrap_mean_difference(per[a], per[b], resamples=resamples, seed=0)

        if results[scope].population:
            _compare(results[scope], resamples, interval)
    return [results[s] for s in scopes]


def churn_population(shop: Shop, cut: Cut) -> tuple[pd.Index, np.ndarray]:
    """Customers at T (a purchase in the lookback) and their labels (1 = churned)."""
    lookback = int(shop.config.get("model", {}).get("lookback_days", 365))  # type: ignore[call-overload]
    at = pd.Timestamp(cut.split.as_of)
    recent = cut.train.loc[cut.train["ts"] >= at - timedelta(days=lookback)]
    customers = pd.Index(np.sort(recent["user_id"].unique()), name="user_id")
    stayed = set(cut.future["user_id"])
    labels = np.array([0 if u in stayed else 1 for u in customers])
    return customers, labels


def evaluate_churn(
    shop: Shop,
    cut: Cut,
    database: Path,
    product: Product | None,
    *,
    resamples: int = 1000,
    log: Log = lambda _: None,
) -> Result:
    """The product's tree beside recency, BG/NBD and Pareto/NBD on one forward split."""
    assert cut.split.as_of is not None and cut.split.horizon_days is not None
    customers, labels = churn_population(shop, cut)
    result = Result(shop.name, "churn", cut.split.name, cut.split.role, "-", "roc_auc",
                    len(customers), diagnostics=("product_stored_risk",))
    result.notes.append(f"churn_rate: {labels.mean():.4f} share")
    scores: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    scores["recency"] = bl.recency_risk(cut.train, cut.split.as_of, customers).to_numpy()
    result.seconds["recency"] = time.perf_counter() - started
    started = time.perf_counter()
    btyd, failed = bl.btyd_risks(cut.train, cut.split.as_of, customers, cut.split.horizon_days)
    for name, risk in btyd.items():
        scores[name] = risk.to_numpy()
        result.seconds[name] = time.perf_counter() - started
    for name, reason in failed.items():
        result.skipped[name] = reason
        result.figures[name] = {"roc_auc": float("nan"), "pr_auc": float("nan")}
        log(f"{name}: NaN ({reason})")
    if product is not None:
        frame, seconds = product.churn(
            database, cut.split.as_of, cut.split.horizon_days, sections=shop.config
        )
        risk = frame.set_index("user_id")
        unscored = int((~customers.isin(risk.index)).sum())
        extra = int((~risk.index.isin(customers)).sum())
        result.notes.append(f"product_unscored_customers: {unscored} users")
        result.notes.append(f"product_scored_non_customers: {extra} users")
        scores[PRODUCT] = risk["risk"].reindex(customers).to_numpy(dtype=float)
        stored = risk["stored_risk"].reindex(customers).to_numpy(dtype=float)
        if np.isfinite(stored).all():
            scores["product_stored_risk"] = stored
        result.seconds[PRODUCT] = seconds
    for name, values in scores.items():
        result.figures[name] = {
            "roc_auc": roc_auc(labels, values),
            "pr_auc": pr_auc(labels, values),
        }
        log(f"{name}: roc_auc {result.figures[name]['roc_auc']:.4f}")

    def interval(a: str, b: str) -> tuple[float, float]:
        return bootstrap_metric_difference(labels, scores[a], scores[b], roc_auc,
                                           resamples=resamples, seed=0)

    _compare(result, resamples, interval)
    return result
