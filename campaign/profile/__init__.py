"""Per-user features and segments as of a time (see docs/features.md).

:func:`profile_frame` is the entry point: SQL aggregation
(:mod:`campaign.profile.queries`) followed by pure derivations
(:mod:`campaign.profile.features`, where every feature is documented once).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from campaign.profile.features import FEATURE_NAMES, FEATURES, derive_features, fill_missing
from campaign.profile.queries import as_utc, load_profile_aggregates

__all__ = ["FEATURES", "FEATURE_NAMES", "fill_missing", "profile_frame"]


def profile_frame(
    connection: Connection | Engine, as_of: datetime, *, lookback_days: int | None = None
) -> pd.DataFrame:
    """Features of every user with an event before ``as_of``. Read-only.

    Uses events strictly before ``as_of`` (and, with ``lookback_days``, not before
    ``as_of - lookback_days``), plus messages and coupons before ``as_of``. Returns a
    frame indexed by ``user_id`` (``users.id``), sorted, with exactly the columns of
    :data:`campaign.profile.features.FEATURES` (meanings, units and the NaN
    convention are documented there and in docs/features.md). ``as_of`` should be
    timezone-aware; naive means UTC.
    """
    as_of = as_utc(as_of)
    if isinstance(connection, Engine):
        with connection.connect() as owned:
            raw = load_profile_aggregates(owned, as_of, lookback_days=lookback_days)
    else:
        raw = load_profile_aggregates(connection, as_of, lookback_days=lookback_days)
    return derive_features(raw, as_of)
