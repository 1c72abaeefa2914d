"""One payload parser per provider (pure): request bytes → :class:`InboundEvent` list.

Each parser raises :class:`campaign.common.errors.InputError` for a malformed body (the
server answers 400 with its reason) and never touches the database.
"""

from __future__ import annotations
