"""Response intake: provider webhooks and unsubscribe links → ``responses``,
``messages.engagement`` and ``suppressions`` (see docs/responses.md).

Importing the package does nothing: the planner imports :mod:`.unsubscribe` for its
link tokens and must not pay for the server.
"""

from __future__ import annotations
