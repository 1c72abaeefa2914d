"""Query results as pandas frames, fast.

``pd.DataFrame(rows)`` on SQLAlchemy ``Row`` objects probes each row attribute by
attribute (a failed key lookup per probe): about 14 s for the 880,000 events of a real
grocery shop. Plain tuples build the same frame in a fraction of that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def frame_of(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A frame with ``columns`` from result rows (SQLAlchemy Rows or tuples)."""
    return pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(columns))
