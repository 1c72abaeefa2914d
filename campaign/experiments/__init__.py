"""Experiments: holdout assignment and variant choice (pure), bandit and uplift later."""

from __future__ import annotations
