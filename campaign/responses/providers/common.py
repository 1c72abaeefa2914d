"""Helpers the provider parsers share: timestamps, bounded strings, payload hygiene."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from campaign.db.queries import address_hash
from campaign.errors import InputError

# Keys that hold a recipient's address in provider payloads: stored only as a hash.
ADDRESS_KEYS = frozenset({"email", "to", "from", "address", "recipient", "phone"})
MAX_EVENT_ID = 255


def bad(source: str, reason: str) -> InputError:
    """The 400 error of a malformed body from ``source`` (a provider name)."""
    return InputError(source, reason)


def parse_ts(source: str, value: Any, default: datetime) -> datetime:
    """An aware UTC time from Unix seconds (int/float/digits) or ISO 8601 text;
    ``default`` when missing.

    Raises:
        InputError: the value is neither.
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad(source, f"timestamp is not a time: {value!r}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 <= seconds < 32_503_680_000:
            raise bad(source, f"timestamp out of range: {value!r}")
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise bad(source, f"timestamp is not ISO 8601 or Unix seconds: {value!r}") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise bad(source, f"timestamp is not a time: {value!r}")


def text_field(source: str, data: dict[str, Any], key: str, max_len: int) -> str | None:
    """``data[key]`` as stripped text (numbers allowed), None when absent or empty.

    Raises:
        InputError: not text or a number, or longer than ``max_len``.
    """
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise bad(source, f"{key} must be a string")
    text = str(value).strip()
    if len(text) > max_len:
        raise bad(source, f"{key} is longer than {max_len} characters")
    return text or None


def scrubbed(data: dict[str, Any], address: str | None) -> dict[str, Any]:
    """``data`` without address fields, plus ``address_hash`` when an address is known,
    so stored payloads never hold a raw address (and ``campaign forget`` can find them)."""
    out = {k: v for k, v in data.items() if k.lower() not in ADDRESS_KEYS}
    if address:
        out["address_hash"] = address_hash(address)
    return out
