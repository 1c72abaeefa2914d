"""Delivery's List-Unsubscribe link is exactly the planner's signed link."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.delivery import unsubscribe
from campaign.planner import links


@settings(max_examples=50)
@given(
    secrets=st.lists(st.text(min_size=1, max_size=20), max_size=2).map(tuple),
    user=st.text(min_size=1, max_size=30),
    channel=st.sampled_from(["email", "sms", "hook"]),
)
def test_delivery_builds_the_same_unsubscribe_url_as_the_planner(
    secrets: tuple[str, ...], user: str, channel: str
) -> None:
    mine = unsubscribe.unsubscribe_secret(secrets, "Shop", "sqlite:///x.db")
    theirs = links.unsubscribe_secret(secrets, "Shop", "sqlite:///x.db")
    assert mine == theirs
    assert unsubscribe.unsubscribe_url("https://s.test/", mine, user, channel) == (
        links.unsubscribe_url("https://s.test/", theirs, user, channel)
    )
