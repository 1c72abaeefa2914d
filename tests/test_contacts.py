"""Addresses for people: :func:`campaign.common.contacts.mask_address`."""

from __future__ import annotations

from campaign.common.contacts import mask_address


def test_masked_addresses_keep_enough_to_tell_them_apart_and_no_more() -> None:
    assert mask_address("alice@example.com") == "a••••@e••••.com"
    assert mask_address("+8613812345678") == "+86•••••••5678"
    assert mask_address("13812345678") == "•••••••5678"
    assert mask_address("x@localhost") == "x••••@l••••"
    assert mask_address("123") == "••••"
    assert mask_address(None) == "" and mask_address("  ") == ""
    assert "alice" not in mask_address("alice@example.com")
