"""CSV files → validated rows; every error names its file, line and column.

The CSV contract is DESIGN.md's: a header row, UTF-8, commas. Opening and sniffing a
file (missing, empty, binary, wrong delimiter, not UTF-8, missing or unknown columns)
is :mod:`campaign.ingest.files`; turning cell text into typed values (timestamps →
UTC, booleans, locales...) is :mod:`campaign.ingest.cells`; the events hot path is
:mod:`campaign.ingest.event_rows`. This module turns users, products and responses
rows into records (money → integer minor units of the shop's currency, tags,
attributes) and re-exports the others' public names. None of them touches the
database: lookups of external ids are plain dicts handed in by the loader.

Line numbers count the header as line 1, like an editor does.
"""

from __future__ import annotations

from typing import Any

from campaign.common.money import parse_amount, shown
from campaign.ingest.cells import (  # noqa: F401 - importable from here too
    EVENT_TYPES,
    HASH_PREFIX,
    MAX_ATTRIBUTE_LENGTH,
    MAX_FIELD_CHARS,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    MAX_TAGS_LENGTH,
    MAX_YEAR,
    MIN_YEAR,
    TOKEN,
    CellError,
    content_hash,
    db_timestamp,
    is_locale,
    is_timezone,
    parse_bool,
    parse_timestamp,
)
from campaign.ingest.event_rows import (  # noqa: F401 - importable from here too
    EVENT_COLUMNS,
    EventChunk,
    event_chunks,
)
from campaign.ingest.files import (  # noqa: F401 - importable from here too
    SPECS,
    CsvFile,
    FileSpec,
    Kind,
    lookalike,
    open_csv,
)


def _text(row: list[str], index: int, column: str, max_length: int) -> str | None:
    if index < 0:
        return None
    value = row[index].strip()
    if not value:
        return None
    if len(value) > max_length:
        raise CellError(column, f"longer than {max_length} characters")
    return value


def _check_width(row: list[str], width: int) -> None:
    if len(row) != width:
        raise CellError("", f"expected {width} fields, found {len(row)}")


def user_record(csv_file: CsvFile, row: list[str]) -> dict[str, Any]:
    """The ``users`` columns present in the file, typed, plus ``attributes`` (extras).

    Keys: ``external_id`` and any of email, phone, name, locale, timezone,
    consent_email, consent_sms (bool; empty = no consent), created_at (aware UTC);
    ``attributes`` holds the non-empty extra columns.

    Raises:
        CellError: a value is missing, malformed or too long.
    """
    _check_width(row, len(csv_file.header))
    col = csv_file.column
    external_id = _text(row, col("user_id"), "user_id", MAX_ID_LENGTH)
    if external_id is None:
        raise CellError("user_id", "required")
    record: dict[str, Any] = {"external_id": external_id}
    for name, limit in (("email", 320), ("phone", 32), ("name", 200)):
        if col(name) >= 0:
            record[name] = _text(row, col(name), name, limit)
    email = record.get("email")
    if email is not None and ("@" not in email or " " in email):
        raise CellError("email", f"not an email address: {email!r}")
    if col("locale") >= 0:
        locale = _text(row, col("locale"), "locale", 16)
        if locale is not None and not is_locale(locale):
            raise CellError("locale", f"not a locale like 'en' or 'zh-CN': {locale!r}")
        record["locale"] = locale
    if col("timezone") >= 0:
        zone = _text(row, col("timezone"), "timezone", 64)
        if zone is not None and not is_timezone(zone):
            raise CellError("timezone", f"not an IANA timezone name: {zone!r}")
        record["timezone"] = zone
    for name in ("consent_email", "consent_sms"):
        if col(name) >= 0:
            try:
                # A missing value means no consent (DESIGN.md).
                record[name] = parse_bool(row[col(name)], False)
            except ValueError as exc:
                raise CellError(name, str(exc)) from None
    if col("created_at") >= 0:
        text = row[col("created_at")].strip()
        try:
            record["created_at"] = parse_timestamp(text) if text else None
        except ValueError as exc:
            raise CellError("created_at", str(exc)) from None
    record["attributes"] = _extras(csv_file, row)
    return record


def product_record(csv_file: CsvFile, row: list[str]) -> dict[str, Any]:
    """The ``products`` columns present in the file, typed, plus ``attributes``.

    Keys: ``external_id`` and any of name, category, brand, price_cents (int),
    tags (list of str), in_stock (bool; empty = true), url.

    Raises:
        CellError: a value is missing, malformed or too long.
    """
    _check_width(row, len(csv_file.header))
    col = csv_file.column
    external_id = _text(row, col("product_id"), "product_id", MAX_ID_LENGTH)
    if external_id is None:
        raise CellError("product_id", "required")
    record: dict[str, Any] = {"external_id": external_id}
    for name, limit in (("name", 300), ("category", 120), ("brand", 120), ("url", 500)):
        if col(name) >= 0:
            record[name] = _text(row, col(name), name, limit)
    if col("price") >= 0:
        text = row[col("price")].strip()
        try:
            record["price_cents"] = parse_amount(text, csv_file.currency) if text else None
        except ValueError as exc:
            raise CellError("price", str(exc)) from None
    if col("tags") >= 0:
        tags = row[col("tags")]
        if len(tags) > MAX_TAGS_LENGTH:
            raise CellError("tags", f"longer than {MAX_TAGS_LENGTH} characters")
        record["tags"] = [t.strip() for t in tags.split("|") if t.strip()]
    if col("in_stock") >= 0:
        try:
            record["in_stock"] = parse_bool(row[col("in_stock")], True)
        except ValueError as exc:
            raise CellError("in_stock", str(exc)) from None
    record["attributes"] = _extras(csv_file, row)
    return record


def response_record(csv_file: CsvFile, row: list[str]) -> dict[str, Any]:
    """A ``responses`` row: message_ref (the file's message_id text), type, ts (aware
    UTC), provider, provider_event_id (``event_id`` or a content hash), hashed (bool).

    Raises:
        CellError: a value is missing, malformed or too long.
    """
    _check_width(row, len(csv_file.header))
    col = csv_file.column
    message_ref = _text(row, col("message_id"), "message_id", 255)
    if message_ref is None:
        raise CellError("message_id", "required")
    kind = row[col("type")].strip().lower()
    if not kind:
        raise CellError("type", "required")
    if TOKEN.fullmatch(kind) is None:
        raise CellError("type", f"not a response type like 'opened': {shown(kind)}")
    try:
        ts = parse_timestamp(row[col("ts")])
    except ValueError as exc:
        raise CellError("ts", str(exc)) from None
    provider = _text(row, col("provider"), "provider", 64)
    event_id = _text(row, col("event_id"), "event_id", 255)
    hashed = event_id is None
    if event_id is None:
        event_id = content_hash(message_ref, kind, db_timestamp(ts), provider or "")
    return {
        "message_ref": message_ref,
        "type": kind,
        "ts": ts,
        "provider": provider,
        "provider_event_id": event_id,
        "hashed": hashed,
    }


def _extras(csv_file: CsvFile, row: list[str]) -> dict[str, str]:
    extras: dict[str, str] = {}
    for name in csv_file.extras:
        value = row[csv_file.index[name]].strip()
        if len(value) > MAX_ATTRIBUTE_LENGTH:
            raise CellError(name, f"longer than {MAX_ATTRIBUTE_LENGTH} characters")
        if value:
            extras[name] = value
    return extras
