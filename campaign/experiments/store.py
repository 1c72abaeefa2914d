"""I/O: the bandit's arm state in ``experiment_arms``.

The counts are *recomputed*, never incremented: :func:`refresh_arms` sets each
(campaign, variant) row to the outcomes of that variant's sent messages whose
attribution window has closed (success = converted in the window). Recomputing
from the messages makes every outcome count exactly once however often it runs, after
a crash, or when a late purchase event arrives before the window closes. Messages
whose window is still open do not count yet (their outcome is unknown); held-out rows
have no variant and never reach the bandit; skipped or failed messages never showed
the variant to anyone, so they are not outcomes of it either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.config import ExperimentsConfig
from campaign.db.models import ExperimentArm, MessageStatus
from campaign.experiments.bandit import ArmCounts, BanditState


def load_arms(connection: Connection, campaign: str) -> dict[str, ArmCounts]:
    """variant name → counts of ``campaign``'s arms. Read-only."""
    rows = connection.execute(
        select(ExperimentArm.variant, ExperimentArm.successes, ExperimentArm.failures).where(
            ExperimentArm.campaign == campaign
        )
    ).all()
    return {row.variant: ArmCounts(int(row.successes), int(row.failures)) for row in rows}


def load_bandit_state(
    connection: Connection, campaign: str, config: ExperimentsConfig
) -> BanditState:
    """The :class:`BanditState` the planner's variant choice needs. Read-only."""
    return BanditState(
        arms=load_arms(connection, campaign),
        floor=config.exploration_floor,
        prior_a=config.prior_successes,
        prior_b=config.prior_failures,
    )


def arm_outcomes(outcomes: pd.DataFrame) -> dict[tuple[str, str], ArmCounts]:
    """Pure: (campaign, variant) → counts from an attribution outcomes frame.

    Counts sent messages with a variant whose window is closed
    (:func:`campaign.measurement.attribution.message_outcomes` columns ``status``, ``variant``,
    ``window_closed``, ``converted``, ``campaign``).
    """
    done = outcomes[
        (outcomes["status"] == MessageStatus.SENT.value)
        & outcomes["variant"].notna()
        & outcomes["window_closed"].astype(bool)
    ]
    out: dict[tuple[str, str], ArmCounts] = {}
    for (campaign, variant), group in done.groupby(["campaign", "variant"]):
        wins = int(group["converted"].sum())
        out[(str(campaign), str(variant))] = ArmCounts(wins, len(group) - wins)
    return out


@dataclass(frozen=True)
class ArmsReport:
    """What :func:`refresh_arms` stored: the counts per (campaign, variant), and changes."""

    arms: dict[tuple[str, str], ArmCounts]
    changed: int


def refresh_arms(engine: Engine, outcomes: pd.DataFrame, *, now: datetime) -> ArmsReport:
    """Set ``experiment_arms`` to the closed outcomes in ``outcomes``; one transaction.

    Arms absent from ``outcomes`` (a variant with no closed message yet) are left as
    they are. Idempotent: the same outcomes store the same counts.
    """
    counts = arm_outcomes(outcomes)
    changed = 0
    with engine.begin() as connection:
        existing = {
            (row.campaign, row.variant): (row.id, row.successes, row.failures)
            for row in connection.execute(
                select(
                    ExperimentArm.id, ExperimentArm.campaign, ExperimentArm.variant,
                    ExperimentArm.successes, ExperimentArm.failures,
                )
            )
        }
        for key, arm in counts.items():
            current = existing.get(key)
            if current is None:
                connection.execute(
                    insert(ExperimentArm).values(
                        campaign=key[0], variant=key[1], successes=arm.successes,
                        failures=arm.failures, updated_at=now,
                    )
                )
                changed += 1
            elif (current[1], current[2]) != (arm.successes, arm.failures):
                connection.execute(
                    update(ExperimentArm)
                    .where(ExperimentArm.id == current[0])
                    .values(successes=arm.successes, failures=arm.failures, updated_at=now)
                )
                changed += 1
    return ArmsReport(counts, changed)
