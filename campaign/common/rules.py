"""A readable tree as text rules: one rule per leaf, its conditions, what the leaf
predicts and how many customers it was learned from.

Shared by the churn tree (:mod:`campaign.churn.rules`) and the uplift tree
(:func:`campaign.uplift.reasons.tree_rules`), drawn by the console's models page and
the HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One leaf: ``if <conditions, and-ed> → <prediction> (<users> users)``.

    ``value`` is the leaf's prediction as a number (a churn rate, an uplift) so the
    rules can be sorted; ``prediction`` is it in words.
    """

    conditions: tuple[str, ...]
    prediction: str
    value: float
    users: int

    @property
    def text(self) -> str:
        """The rule as one line of text."""
        when = " and ".join(self.conditions) if self.conditions else "every customer"
        return f"if {when} → {self.prediction} ({self.users:,} users)"
