"""Behaviour segments: k-means on standardised features, named from the centroids. Pure.

Only buyers (at least one order before T) are clustered; everyone else in the profile
is :data:`BROWSERS`. Each buyer is described by the :data:`BEHAVIOUR` columns (logs
tame the long tails of counts and money), standardised to z-scores; k-means with a
fixed ``random_state`` groups them; each cluster is named by the rules of
:data:`NAMING_RULES` applied to its centroid's z-scores (see docs/features.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

BROWSERS = "browsers"
FALLBACK = "occasional customers"
# Above this many buyers k-means is fitted on a seeded sample and predicts the rest:
# the centroids barely move and a million customers stay a matter of seconds.
MAX_FIT_ROWS = 100_000
# A rule names a cluster only when its score (in standard deviations) reaches this.
MIN_SCORE = 0.5

# behaviour column → how it is computed from the feature frame
BEHAVIOUR: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "recency": lambda f: np.log1p(f["days_since_last_purchase"]),
    "frequency": lambda f: np.log1p(f["orders_365d"]),
    "orders": lambda f: np.log1p(f["orders_total"]),
    "order_value": lambda f: np.log1p(f["avg_order_value_cents"]),
    "coupon_share": lambda f: f["coupon_order_share"],
    "trend": lambda f: f["order_trend"],
    "tenure": lambda f: np.log1p(f["tenure_days"]),
}


@dataclass(frozen=True)
class NamingRule:
    """A segment name, when a centroid qualifies for it, and how strongly."""

    name: str
    applies: Callable[[Mapping[str, float]], bool]
    score: Callable[[Mapping[str, float]], float]
    description: str


# Applied in this order (specific before generic); z = a centroid's z-scores.
NAMING_RULES: tuple[NamingRule, ...] = (
    NamingRule(
        "loyal big spenders",
        lambda z: z["order_value"] > 0 and z["frequency"] > 0 and z["recency"] < 0,
        lambda z: (z["order_value"] + z["frequency"]) / 2,
        "order value and frequency above average, bought recently; "
        "score = mean of the two",
    ),
    NamingRule(
        "bargain hunters",
        lambda z: z["coupon_share"] > 0,
        lambda z: z["coupon_share"],
        "share of orders with a coupon above average; score = its z",
    ),
    NamingRule(
        "fading regulars",
        lambda z: z["orders"] > 0 and (z["recency"] > 0 or z["trend"] < 0),
        lambda z: (z["orders"] + max(z["recency"], -z["trend"])) / 2,
        "many orders in total but a long time since the last one or a falling trend; "
        "score = mean of orders and the stronger of recency and -trend",
    ),
    NamingRule(
        "new customers",
        lambda z: z["tenure"] < 0 and z["recency"] < 0,
        lambda z: -z["tenure"],
        "known for a short time and bought recently; score = -tenure",
    ),
    NamingRule(
        "one-time buyers",
        lambda z: z["orders"] < 0,
        lambda z: -z["orders"],
        "fewer orders than average (typically one); score = -orders",
    ),
    NamingRule(
        "loyal regulars",
        lambda z: z["frequency"] > 0 and z["recency"] < 0,
        lambda z: z["frequency"],
        "buy often and recently, at an ordinary order value; score = frequency",
    ),
    NamingRule(
        "lapsed customers",
        lambda z: z["recency"] > 0,
        lambda z: z["recency"],
        "a long time since the last order; score = recency",
    ),
)
SEGMENT_NAMES: tuple[str, ...] = (
    *(rule.name for rule in NAMING_RULES),
    FALLBACK,
    BROWSERS,
)


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment_customers`.

    ``names``: Series ``user_id`` → segment name, one per row of the feature frame.
    ``centroids``: one row per cluster (index ``cluster``) with the z-score of each
    :data:`BEHAVIOUR` column, plus ``name`` and ``size`` (buyers in the cluster).
    """

    names: pd.Series
    centroids: pd.DataFrame


def behaviour_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """The :data:`BEHAVIOUR` columns of the buyers (``orders_total > 0``) in ``features``."""
    buyers = features[features["orders_total"] > 0]
    matrix = pd.DataFrame({name: f(buyers) for name, f in BEHAVIOUR.items()}, index=buyers.index)
    return matrix.astype("float64").fillna(0.0)


def name_clusters(centroids: pd.DataFrame) -> dict[int, str]:
    """Names for clusters from their centroid z-scores (rows: cluster, columns: BEHAVIOUR).

    Rules are taken in the order of :data:`NAMING_RULES` (specific before generic);
    each names the not yet named cluster it applies to with the highest score, if
    that score reaches :data:`MIN_SCORE` (ties: the lower cluster number). Clusters
    left over are :data:`FALLBACK`. Deterministic for the same centroids.
    """
    z_rows = {
        int(cluster): {name: float(row[name]) for name in BEHAVIOUR}
        for cluster, row in centroids.iterrows()
    }
    names: dict[int, str] = {}
    for rule in NAMING_RULES:
        scored = [
            (-round(rule.score(z), 9), cluster)
            for cluster, z in z_rows.items()
            if cluster not in names and rule.applies(z) and rule.score(z) >= MIN_SCORE
        ]
        if scored:
            names[min(scored)[1]] = rule.name
    return {cluster: names.get(cluster, FALLBACK) for cluster in z_rows}


def segment_customers(
    features: pd.DataFrame, *, n_segments: int = 5, random_state: int = 0
) -> Segmentation:
    """Cluster the buyers of a profile frame and name every user's segment.

    ``features`` is a :func:`campaign.profile.profile_frame` frame (index ``user_id``).
    Non-buyers get :data:`BROWSERS`. The same frame and ``random_state`` always give
    the same segments.
    """
    features = features.sort_index()
    names = pd.Series(BROWSERS, index=features.index, name="segment", dtype="object")
    matrix = behaviour_matrix(features)
    columns = [*BEHAVIOUR, "name", "size"]
    if matrix.empty:
        empty = pd.DataFrame(columns=columns, index=pd.Index([], name="cluster"))
        return Segmentation(names, empty)
    scaled = StandardScaler().fit_transform(matrix.to_numpy())
    k = n_segments
    if len(scaled) <= 10 * n_segments:  # k-means needs at least k distinct points
        k = max(1, min(n_segments, len(np.unique(scaled.round(9), axis=0))))
    sample = scaled
    if len(scaled) > MAX_FIT_ROWS:
        rows = np.random.default_rng(random_state).choice(len(scaled), MAX_FIT_ROWS, replace=False)
        sample = scaled[np.sort(rows)]
    model = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit(sample)
    labels = model.predict(scaled)
    centroids = pd.DataFrame(model.cluster_centers_, columns=list(BEHAVIOUR))
    centroids.index.name = "cluster"
    cluster_names = name_clusters(centroids)
    centroids["name"] = [cluster_names[c] for c in centroids.index]
    centroids["size"] = np.bincount(labels, minlength=k)
    names.loc[matrix.index] = [cluster_names[int(c)] for c in labels]
    return Segmentation(names, centroids)


def segments_markdown() -> str:
    """The naming-rules table of docs/features.md, generated from :data:`NAMING_RULES`."""
    lines = ["| order | segment | rule on the centroid's z-scores |", "|---|---|---|"]
    for number, rule in enumerate(NAMING_RULES, start=1):
        lines.append(f"| {number} | {rule.name} | {rule.description} |")
    return "\n".join(lines) + "\n"
