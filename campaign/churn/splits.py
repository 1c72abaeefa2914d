"""The name of a forward-holdout split, printed beside every figure measured on it.

Light on purpose (no scikit-learn): reports and the model history import it.
"""

from __future__ import annotations

from datetime import datetime, time

# Figures are compared (champion/challenger) and shown at this precision, so every
# decision can be checked against the numbers printed beside it.
FIGURE_DECIMALS = 3


def _moment(value: datetime) -> str:
    return f"{value:%Y-%m-%d}" if value.time() == time(0) else f"{value:%Y-%m-%d %H:%M}"


def split_label(scored_at: datetime, outcomes_to: datetime) -> str:
    """The name of a forward holdout split, printed beside every figure measured on it:
    ``holdout 2026-08-03 to 2026-11-01`` (scored at the first time, outcomes up to the
    second). Two figures with the same label were measured on the same customers."""
    return f"holdout {_moment(scored_at)} to {_moment(outcomes_to)}"
