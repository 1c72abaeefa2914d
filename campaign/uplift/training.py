"""Training and evaluating the uplift model of one campaign (docs/uplift.md).

The experiment rows are split once (stratified on treatment × outcome, seeded): the
readable tree and the challenger are fitted on one part and compared by Qini on the
other, beside risk targeting (the customers longest without an order first) and
random. The challenger is kept only when it is clearly better (its Qini higher in
at least 90 % of bootstrap resamples of those rows), else the readable tree. The
winner is refitted on every row and stored; a campaign with fewer treated
or held-out users than ``[uplift] min_treated`` / ``min_control`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from campaign.common.errors import ModelError
from campaign.common.money import minor_digits
from campaign.config import UpliftConfig
from campaign.uplift.attributes import AttributeEncoder
from campaign.uplift.data import FEATURE_COLUMNS, OUTCOMES
from campaign.uplift.evaluate import (
    QiniPoints,
    perfect_ranking,
    qini_coefficient,
    qini_on_resamples,
    ranking_table,
    resampled_sums,
)
from campaign.uplift.model import TwoModelBoosting, UpliftModel, UpliftTree, balancing_weights
from campaign.uplift.targeting import TargetingStatistics

TREE, BOOSTING, RISK = "tree", "boosting", "risk (recency)"
# The challenger replaces the readable tree only when its Qini is higher in at least
# this share of bootstrap resamples of the held-back rows.
CLEARLY_BETTER = 0.9
BOOTSTRAP_DRAWS = 200
# Responders per leaf of the second readable tree tried (leaf_rules).
TUNED_RESPONDERS = 10
# The risk ranking the uplift model is compared with: longest without an order first.
RISK_COLUMN = "days_since_last_purchase"


def outcome_values(frame: pd.DataFrame, outcome: str, currency: str) -> np.ndarray:
    """The outcome per row: 0/1 for converted and visited, major currency units for
    revenue."""
    if outcome not in OUTCOMES:
        raise ModelError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    if outcome == "revenue":
        return frame["revenue_cents"].to_numpy(dtype=float) / 10 ** minor_digits(currency)
    return frame[outcome].to_numpy(dtype=float)


def check_enough(frame: pd.DataFrame, campaign: str, config: UpliftConfig) -> None:
    """Refuse a campaign below the configured minimum of treated and held-out users.

    Raises:
        ModelError: naming both counts and both settings.
    """
    treated = int(frame["treatment"].sum()) if len(frame) else 0
    control = len(frame) - treated
    if treated < config.min_treated or control < config.min_control:
        raise ModelError(
            f"campaign {campaign!r}: {treated:,} treated and {control:,} held-out users with "
            f"a closed attribution window; the uplift model needs at least "
            f"{config.min_treated:,} treated and {config.min_control:,} held out "
            "([uplift] min_treated, min_control): wait for more runs, or import past tests "
            "with `campaign import experiments`"
        )


@dataclass(frozen=True)
class Comparison:
    """The models compared on the held-out part of the experiment rows."""

    table: pd.DataFrame  # rows: metrics (ranking_table); columns: rankings
    train_rows: int
    validation_rows: int
    chosen: str
    # Share of bootstrap resamples of the held-back rows where the challenger's Qini
    # is higher than the tree's.
    challenger_wins: float = 0.0
    # What targeting by the chosen model gains over risk on the held-back rows
    # (campaign.uplift.targeting.TargetingStatistics.summary); stored with the version.
    targeting: dict[str, Any] = field(default_factory=dict)
    # The readable tree's responders-per-leaf rule that ranked the held-back rows best.
    min_responders: int = 0


def design(frame: pd.DataFrame, encoder: AttributeEncoder | None) -> pd.DataFrame:
    """The model inputs: the profile features, then the encoded attributes."""
    X = frame[list(FEATURE_COLUMNS)].astype(float).reset_index(drop=True)
    if encoder is None or not encoder.columns_:
        return X
    attributes = frame["attributes"] if "attributes" in frame else [{}] * len(frame)
    return pd.concat([X, encoder.transform(list(attributes), index=X.index)], axis=1)


def attribute_encoder(frame: pd.DataFrame, config: UpliftConfig) -> AttributeEncoder | None:
    """The configured attributes fitted on ``frame``'s rows (None when none are named)."""
    if not config.numeric_attributes and not config.categorical_attributes:
        return None
    attributes = frame["attributes"] if "attributes" in frame else [{}] * len(frame)
    return AttributeEncoder(config.numeric_attributes, config.categorical_attributes,
                            config.max_categories).fit(list(attributes))


def _split(frame: pd.DataFrame, y: np.ndarray, config: UpliftConfig
           ) -> tuple[np.ndarray, np.ndarray]:
    strata = frame["treatment"].to_numpy(dtype=int) * 2 + (y > 0).astype(int)
    counts = np.bincount(strata, minlength=4)
    stratify = strata if counts[counts > 0].min() >= 2 else None
    index = np.arange(len(frame))
    train, valid = train_test_split(index, test_size=config.validation_share,
                                    random_state=config.random_state, stratify=stratify)
    return np.sort(train), np.sort(valid)


def _fit_tree(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, p: np.ndarray,
              config: UpliftConfig, min_responders: int | None = None) -> UpliftTree:
    responders = config.min_responders_per_leaf if min_responders is None else min_responders
    return UpliftTree(max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
                      random_state=config.random_state,
                      min_responders=responders).fit(X, y, w, p)


def leaf_rules(config: UpliftConfig) -> tuple[int, ...]:
    """The responders-per-leaf rules the readable tree is tried with: the configured
    one, and (``[uplift] tune_leaf_size``) larger leaves for rare outcomes."""
    if not config.tune_leaf_size:
        return (config.min_responders_per_leaf,)
    return tuple(dict.fromkeys((config.min_responders_per_leaf,
                                max(config.min_responders_per_leaf, TUNED_RESPONDERS))))


def _fit_boosting(X: pd.DataFrame, y: np.ndarray, w: np.ndarray, p: np.ndarray,
                  config: UpliftConfig) -> TwoModelBoosting:
    return TwoModelBoosting(min_samples_leaf=max(20, config.min_samples_leaf // 2),
                            random_state=config.random_state).fit(X, y, w, p)


def compare(frame: pd.DataFrame, outcome: str, config: UpliftConfig, currency: str,
            progress: object = None) -> Comparison:
    """Fit the tree and the challenger on one part, compare them on the other."""
    y = outcome_values(frame, outcome, currency)
    train, valid = _split(frame, y, config)
    X = design(frame, attribute_encoder(frame.iloc[train], config))
    w = frame["treatment"].to_numpy(dtype=bool)
    p = frame["p_treatment"].to_numpy(dtype=float)
    X_valid = X.iloc[valid]
    # The leaf size that ranks the held-back rows best (the configured one on a tie).
    trees = {rule: _fit_tree(X.iloc[train], y[train], w[train], p[train], config, rule)
             for rule in leaf_rules(config)}
    tree_qini = {rule: qini_coefficient(y[valid], w[valid], t.predict_uplift(X_valid),
                                        p[valid]) for rule, t in trees.items()}
    min_responders = max(tree_qini, key=lambda rule: np.nan_to_num(tree_qini[rule], nan=-1))
    tree = trees[min_responders]
    boosting = _fit_boosting(X.iloc[train], y[train], w[train], p[train], config)
    table_scores = {
        TREE: tree.predict_uplift(X_valid),
        BOOSTING: boosting.predict_uplift(X_valid),
        RISK: X_valid[RISK_COLUMN].to_numpy(),
    }
    table = ranking_table(y[valid], w[valid], p[valid], table_scores)
    outcomes = {name: outcome_values(frame, name, currency)[valid]
                for name in dict.fromkeys((outcome, "converted", "revenue"))}
    wins, targeting = _resampled(y[valid], w[valid], p[valid], table_scores, outcomes,
                                 np.random.default_rng(config.random_state))
    # The readable tree stays unless the challenger is clearly better: its Qini higher in
    # at least CLEARLY_BETTER of the bootstrap resamples of the held-back rows.
    chosen = BOOSTING if wins >= CLEARLY_BETTER else TREE
    return Comparison(table, len(train), len(valid), chosen, wins, targeting[chosen],
                      min_responders)


def _resampled(y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
               scores: dict[str, np.ndarray], outcomes: dict[str, np.ndarray],
               rng: np.random.Generator) -> tuple[float, dict[str, dict[str, Any]]]:
    """On one set of bootstrap resamples of the held-back rows: the share where the
    challenger's Qini is above the tree's, and each candidate's targeting summary
    (campaign.uplift.targeting) against risk.

    One pass: drawing the resamples costs as much as every statistic on them together.
    """
    weights = balancing_weights(treatment, p)
    perfect = QiniPoints(y, treatment, perfect_ranking(y, treatment), weights)
    qini = {name: QiniPoints(y, treatment, scores[name], weights) for name in (TREE, BOOSTING)}
    targeting = {name: TargetingStatistics(y, treatment, p, scores[name], scores[RISK],
                                           outcomes) for name in (TREE, BOOSTING)}
    matrices = [perfect.matrix, *(q.matrix for q in qini.values()),
                *(m for t in targeting.values() for m in t.matrices)]
    sums = resampled_sums(matrices, len(y), rng, BOOTSTRAP_DRAWS)
    found = qini_on_resamples(perfect, qini, sums[:3])
    wins = float(np.mean(found[BOOSTING] > found[TREE]))
    summaries = {name: t.summary(sums[3 + 2 * i: 5 + 2 * i])
                 for i, (name, t) in enumerate(targeting.items())}
    return wins, summaries


def fit_uplift(frame: pd.DataFrame, campaign: str, outcome: str, config: UpliftConfig,
               currency: str, chosen: str, min_responders: int | None = None) -> UpliftModel:
    """The chosen estimator and the readable tree (with the chosen responders-per-leaf
    rule, default the configured one), refitted on every row."""
    y = outcome_values(frame, outcome, currency)
    encoder = attribute_encoder(frame, config)
    X = design(frame, encoder)
    w = frame["treatment"].to_numpy(dtype=bool)
    p = frame["p_treatment"].to_numpy(dtype=float)
    tree = _fit_tree(X, y, w, p, config, min_responders)
    estimator = _fit_boosting(X, y, w, p, config) if chosen == BOOSTING else tree
    return UpliftModel(campaign=campaign, outcome=outcome, chosen=chosen,
                       estimator=estimator, tree=tree, currency=currency, encoder=encoder)
