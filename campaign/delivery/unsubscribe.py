"""The signed one-click unsubscribe link put in ``List-Unsubscribe`` (pure).

The secret and token have one implementation, :mod:`campaign.responses.unsubscribe`
(shared with ``campaign serve``, which checks the links, and the planner, which renders
the same link into the body). The planner's own ``links`` module is not imported here
because its package pulls in pandas, scikit-learn and scipy (seconds of start-up for
every ``campaign send``); ``tests/test_delivery_unsubscribe.py`` checks both agree.
"""

from __future__ import annotations

from campaign.responses.unsubscribe import unsubscribe_query, unsubscribe_secret

__all__ = ["unsubscribe_secret", "unsubscribe_url"]


def unsubscribe_url(base_url: str, secret: bytes, user_key: str, channel: str) -> str:
    """The absolute, signed unsubscribe URL of one user (shop id) on one channel."""
    return f"{base_url.rstrip('/')}/unsubscribe?{unsubscribe_query(secret, user_key, channel)}"
