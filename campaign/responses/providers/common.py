"""Helpers the provider parsers share: JSON, timestamps, bounded strings, payload hygiene.

Everything a provider sends is checked here before it reaches the database, so a
signed but hostile body is a 400 with a reason, never a crash (a provider retries a
500 forever): JSON nested too deep, numbers that are not finite (``NaN`` is not JSON
and PostgreSQL refuses it), text PostgreSQL cannot store (NUL, lone surrogates), and
times that fall off the calendar once their offset is applied.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from campaign.common.contacts import address_hash, normalize_address
from campaign.common.errors import InputError

# Keys that hold a recipient's address in provider payloads: stored only as a hash.
ADDRESS_KEYS = frozenset({"email", "to", "from", "address", "recipient", "phone"})
MAX_EVENT_ID = 255
# Deeper JSON than any provider sends; bounds the work (and recursion) of every reader.
MAX_JSON_DEPTH = 32
# NUL and lone UTF-16 surrogates: PostgreSQL stores neither in text or JSON.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def bad(source: str, reason: str) -> InputError:
    """The 400 error of a malformed body from ``source`` (a provider name)."""
    return InputError(source, reason)


def load_json(source: str, body: bytes) -> Any:
    """The JSON value of ``body``, checked so that anything in it can be stored.

    Raises:
        InputError: not UTF-8 JSON, nested deeper than :data:`MAX_JSON_DEPTH`, a number
            that is not finite (``NaN``, ``Infinity``, ``1e400``), or text with NUL or a
            lone surrogate.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise bad(source, f"JSON is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(source, f"body is not JSON: {exc}") from None
    check_storable(source, data)
    return data


def check_storable(source: str, data: Any) -> None:
    """Refuse JSON a database cannot store faithfully (see :func:`load_json`).

    Raises:
        InputError: too deep, a non-finite number, or an unstorable character.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise bad(source, f"JSON is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            check_text(source, value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise bad(source, f"numbers must be finite, not {value!r}")
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(source, key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def check_text(source: str, text: str) -> str:
    """``text`` if PostgreSQL can store it (no NUL, no lone surrogate).

    Raises:
        InputError: an unstorable character, with its position.
    """
    found = _UNSTORABLE.search(text)
    if found:
        raise bad(
            source,
            f"text holds a character that cannot be stored (U+{ord(found.group()):04X}"
            f" at position {found.start()})",
        )
    return text


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
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            # 9999-12-31T23:59:59-05:00 is in year 10000 in UTC (0001 ... +05:00 in year 0).
            raise bad(source, f"timestamp out of range once in UTC: {value!r}") from None
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
        out["address_hash"] = address_hash(normalize_address(address))
    return out
