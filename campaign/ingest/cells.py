"""Cell text → typed values (pure): timestamps in UTC, booleans, time zones, locales,
and the content hash and database time text the loader stores."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from campaign.common.money import shown
from campaign.db.models import EventType

EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)

MAX_ID_LENGTH = 128

HASH_PREFIX = "hash:"

_TRUE = frozenset({"true", "1", "yes", "y", "t"})

_FALSE = frozenset({"false", "0", "no", "n", "f"})

# Timestamps outside these years are sentinels ("never", "unknown"), not events; they
# would also overflow date arithmetic downstream (9999-12-31 plus a horizon).
MIN_YEAR, MAX_YEAR = 1900, 2199

# The ``quantity`` column is a 32-bit integer in both databases.
MAX_QUANTITY = 2**31 - 1

# Extra columns land in a JSON column; keep each value to a sane size.
MAX_ATTRIBUTE_LENGTH = 2_000

MAX_TAGS_LENGTH = 2_000

# csv's own limit (128 KiB) is a fatal error without a column; read fields up to
# this size so the per-column checks below can name the column.
MAX_FIELD_CHARS = 64 * 1024 * 1024

_LOCALE = re.compile(r"[a-zA-Z]{2,3}(?:[-_](?:[A-Za-z]{4}))?(?:[-_](?:[A-Za-z]{2}|\d{3}))?")

TOKEN = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


class CellError(ValueError):
    """A cell's value is not acceptable; ``column`` names it. Turned into InputError."""

    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"{column}: {reason}")


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; naive input means UTC.

    Raises:
        ValueError: not an ISO 8601 timestamp, or outside the years
            :data:`MIN_YEAR`-:data:`MAX_YEAR`.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise ValueError(f"not an ISO 8601 timestamp: {shown(text)}") from None
    check_year(value, text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_year(value: datetime, text: str) -> None:
    # Checked before any conversion to UTC, which would overflow at year 1 or 9999.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(
            f"outside the years {MIN_YEAR}-{MAX_YEAR} (a placeholder, not a time?): {shown(text)}"
        )


def parse_bool(text: str, default: bool) -> bool:
    """true/false/1/0/yes/no (any case); an empty cell is ``default``.

    Raises:
        ValueError: anything else.
    """
    value = text.strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"not a boolean (true/false/1/0/yes/no): {shown(text)}")


@lru_cache(maxsize=2048)
def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA timezone name the zone database knows."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ValueError, OSError):
        # ZoneInfoNotFoundError is a KeyError subclass; bad keys raise ValueError.
        return False
    except KeyError:
        return False
    return True


def is_locale(text: str) -> bool:
    """Whether ``text`` looks like a locale tag (``en``, ``zh-CN``, ``pt_BR``, ``zh-Hans-CN``)."""
    return _LOCALE.fullmatch(text) is not None


def content_hash(*parts: object) -> str:
    """A stable id for a row without an ``event_id``: a hash of its normalized values."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16)
    return HASH_PREFIX + digest.hexdigest()


def db_timestamp(value: datetime) -> str:
    """Naive-UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``: SQLAlchemy's SQLite storage format.

    Also valid input for a PostgreSQL ``timestamp`` column (then read as UTC).
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")
