"""What the models page shows: the active churn tree and every campaign's active
uplift tree as text rules, and each kind's versions over time. Reads the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from campaign.common.errors import CampaignError
from campaign.config import Config

if TYPE_CHECKING:
    import pandas as pd

    from campaign.common.rules import Rule


@dataclass(frozen=True)
class TreeRules:
    """One active model's readable tree as rules (``problem``: why there are none)."""

    kind: str  # "churn" or "uplift"
    version: int | None
    as_of: datetime | None
    campaign: str | None
    outcome: str | None
    chosen: str | None
    rules: list[Rule]
    problem: str | None = None


@dataclass(frozen=True)
class ModelsView:
    """The churn tree's rules, the uplift trees' rules (a campaign each), and the
    version histories (:func:`campaign.measurement.reports.data.model_history`,
    :func:`campaign.uplift.report.uplift_history`)."""

    churn: TreeRules
    uplift: list[TreeRules]
    churn_history: pd.DataFrame
    uplift_history: pd.DataFrame


def churn_tree_rules(connection: Connection, config: Config) -> TreeRules:
    """The active churn model's tree as rules, money in the shop currency."""
    from campaign.churn.artifacts import model_key
    from campaign.churn.registry import load_model
    from campaign.churn.rules import churn_rules

    try:
        loaded = load_model(connection, key=model_key(config.model))
    except CampaignError as exc:  # no model yet, or one that does not verify
        return TreeRules("churn", None, None, None, None, None, [], str(exc))
    return TreeRules("churn", loaded.id, loaded.as_of, None, "churn", "tree",
                     churn_rules(loaded.pipeline, config.shop.currency))


def uplift_tree_rules(connection: Connection, config: Config,
                      campaign: str | None = None) -> list[TreeRules]:
    """Every active uplift model's readable tree as rules (of ``campaign``, else all),
    by campaign name. With the challenger chosen, the rules are those of the tree kept
    beside it, which the reasons are read from."""
    from campaign.churn.artifacts import model_key
    from campaign.uplift.reasons import tree_rules
    from campaign.uplift.registry import active_uplift_campaigns, load_uplift

    found = []
    for name in sorted(active_uplift_campaigns(connection)):
        if campaign is not None and name != campaign:
            continue
        try:
            model, loaded = load_uplift(connection, name, key=model_key(config.model))
        except CampaignError as exc:
            found.append(TreeRules("uplift", None, None, name, None, None, [], str(exc)))
            continue
        found.append(TreeRules("uplift", loaded.id, loaded.as_of, name, model.outcome,
                               model.chosen,
                               tree_rules(model.tree, model.outcome, model.currency)))
    return found


def models_view(engine: Engine, config: Config) -> ModelsView:
    """Everything the console's models page draws, on one read-only connection."""
    from campaign.measurement.reports.data import model_history
    from campaign.uplift.report import uplift_history

    with engine.connect() as connection:
        return ModelsView(churn_tree_rules(connection, config),
                          uplift_tree_rules(connection, config),
                          model_history(connection), uplift_history(connection))
