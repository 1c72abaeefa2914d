"""Campaign runs: audience → holdout → variant → products → coupon → render → outbox.

``plan_run`` writes one run in one transaction; ``preview_run`` is the same code with
every write switched off. See docs/planning.md.
"""

from __future__ import annotations

from campaign.planner.run import PlannedMessage, RunReport, plan_run

__all__ = ["PlannedMessage", "RunReport", "plan_run"]
