"""The demo shop's fixed knobs, apart from its generator.

A light module (stdlib only) so ``campaign demo``'s options and help can name the
defaults without importing numpy and pandas; :mod:`campaign.demo.shop` re-exports them.
"""

from __future__ import annotations

from datetime import UTC, datetime

# The simulated history ends here; the demo's clock is pinned to it.
DEMO_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_USERS = 3000
DEFAULT_SEED = 7
MAX_USERS = 1_000_000

# Responses, purchases and retraining happen after the 90 simulated days past the
# as-of date, so every attribution window and churn horizon has closed.
LOOP_DAYS = 92

# The demo's second run (of the `retain` reminder, targeted by uplift) happens this many
# days after the first, inside the simulated future, so its 14-day window closes too.
SECOND_RUN_DAYS = 45
