"""Events files in chunks: the hot path of an import, a column-wise parse of many rows
at once into the events table's load order (:data:`EVENT_COLUMNS`).

The one copy of the events rules: CSV files and Parquet files
(:mod:`campaign.ingest.parquet`, whose columns arrive as the same cell text) both go
through :func:`event_chunks`."""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from campaign.common.errors import InputError
from campaign.common.money import MAX_MINOR_UNITS, minor_digits, parse_amount, shown
from campaign.ingest.cells import (
    EVENT_TYPES,
    HASH_PREFIX,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    MAX_YEAR,
    MIN_YEAR,
    CellError,
    check_year,
)
from campaign.ingest.files import RowSource

# Lengths of 'YYYY-MM-DDTHH:MM:SS' with 'Z' or with '+00:00' after it.
_PLAIN_TIMESTAMP_LENGTHS = frozenset((20, 25))


def _slow_timestamp(text: str) -> datetime:
    """The timestamp of a cell fromisoformat refused as is (spaces around it)."""
    if not text.strip():
        raise CellError("ts", "required")
    try:
        return datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise CellError("ts", f"not an ISO 8601 timestamp: {shown(text)}") from None


@dataclass
class EventChunk:
    """Validated events of one chunk of a file, ready for a bulk insert.

    ``records`` are tuples in :data:`EVENT_COLUMNS` order (``ts`` as naive-UTC text);
    ``lines`` and ``raws`` run parallel to them (for duplicate reports and rejects);
    ``errors`` are the rows that failed, each with its raw cells; ``duplicates`` are
    rows whose id already appeared earlier in this chunk (explicit ``event_id``:
    errors; content hash: the same event twice, collapsed); ``rows`` counts rows read.
    """

    records: list[tuple[Any, ...]]
    lines: list[int]
    raws: list[Sequence[str]]
    errors: list[tuple[InputError, Sequence[str]]]
    collapsed: int
    rows: int

EVENT_COLUMNS = (
    "user_id",
    "product_id",
    "type",
    "ts",
    "order_id",
    "quantity",
    "amount_cents",
    "coupon_code",
    "source_event_id",
)


@lru_cache(maxsize=16)
def _money_pattern(digits: int) -> re.Pattern[str]:
    """Plain amounts with up to ``digits`` decimals that cannot exceed MAX_MINOR_UNITS."""
    width = len(str(MAX_MINOR_UNITS)) - digits
    if digits == 0:
        return re.compile(rf"([0-9]{{1,{width}}})()")
    return re.compile(rf"([0-9]{{1,{width}}})(?:\.([0-9]{{1,{digits}}}))?")


def event_chunks(
    csv_file: RowSource,
    users: Mapping[str, int],
    products: Mapping[str, int],
    chunk_size: int = 20_000,
) -> Iterator[EventChunk]:
    """Stream ``events`` rows as validated :class:`EventChunk` of up to ``chunk_size`` rows.

    ``users`` / ``products`` map external ids to internal ids (what the database has);
    an unknown reference is an error. This loop is the import's hot path: it does no
    per-row allocation beyond the output tuple and avoids function calls where it can.
    ``csv_file`` is a CSV file or Parquet files (any :class:`RowSource`): rows of cell
    text either way, so both formats follow the same rules.
    """
    col = csv_file.column
    width = len(csv_file.header)
    i_user, i_type, i_ts = col("user_id"), col("type"), col("ts")
    i_event, i_product, i_order = col("event_id"), col("product_id"), col("order_id")
    i_quantity, i_amount, i_coupon = col("quantity"), col("amount"), col("coupon_code")
    event_types = EVENT_TYPES
    fromisoformat = datetime.fromisoformat
    currency = csv_file.currency
    digits = minor_digits(currency)
    scale = 10**digits
    # The common shapes ('129', '129.5') in one regex; anything else (trailing zeros,
    # too many decimals or digits, junk) goes through parse_amount for the exact answer.
    money = _money_pattern(digits).fullmatch
    min_year, max_year = MIN_YEAR, MAX_YEAR
    utc = UTC
    plain_lengths = _PLAIN_TIMESTAMP_LENGTHS
    blake2b = hashlib.blake2b
    error = csv_file.error

    records: list[tuple[Any, ...]] = []
    lines: list[int] = []
    raws: list[Sequence[str]] = []
    errors: list[tuple[InputError, Sequence[str]]] = []
    seen: dict[str, int] = {}
    collapsed = 0
    count = 0

    reader = csv_file.reader
    offset = csv_file.line_offset
    try:
        for row in reader:
            if not row:
                continue
            line = reader.line_num + offset
            count += 1
            try:
                if len(row) != width:
                    raise CellError("", f"expected {width} fields, found {len(row)}")
                user_ref = row[i_user]
                user_id = users.get(user_ref)
                if user_id is None:
                    user_ref = user_ref.strip()
                    if not user_ref:
                        raise CellError("user_id", "required")
                    user_id = users.get(user_ref)
                    if user_id is None:
                        raise CellError(
                            "user_id", f"unknown user {shown(user_ref)} (import users first)"
                        )
                kind = row[i_type]
                if kind not in event_types:
                    kind = kind.strip().lower()
                    if kind not in event_types:
                        raise CellError(
                            "type",
                            f"unknown event type {shown(row[i_type])} "
                            f"(known: {', '.join(sorted(event_types))})",
                        )
                text = row[i_ts]
                try:
                    ts = fromisoformat(text)
                except (ValueError, OverflowError):
                    ts = _slow_timestamp(text)
                if not min_year <= ts.year <= max_year:
                    # Before the conversion to UTC, which overflows at years 1 and 9999.
                    try:
                        check_year(ts, text)
                    except ValueError as exc:
                        raise CellError("ts", str(exc)) from None
                zone = ts.tzinfo
                size = len(text)
                if (
                    (zone is None or zone is utc)
                    and (size == 19 or (size in plain_lengths and text[19] in "Z+-"))
                    and text[13] == ":"
                    and text[16] == ":"
                    and text[10] in "T "
                    and text[7] == "-"
                ):
                    # The usual 'YYYY-MM-DDTHH:MM:SS[Z]', already validated: slicing is
                    # several times cheaper than datetime.isoformat().
                    ts_text = text[:10] + " " + text[11:19] + ".000000"
                elif zone is None:
                    ts_text = ts.isoformat(" ", "microseconds")
                else:
                    ts_text = ts.astimezone(utc).isoformat(" ", "microseconds")[:26]
                product_id = None
                product_ref = ""
                if i_product >= 0:
                    product_ref = row[i_product]
                    if product_ref:
                        product_id = products.get(product_ref)
                        if product_id is None:
                            product_ref = product_ref.strip()
                            if product_ref:
                                product_id = products.get(product_ref)
                                if product_id is None:
                                    raise CellError(
                                        "product_id",
                                        f"unknown product {shown(product_ref)} "
                                        "(import products first)",
                                    )
                order_id = (row[i_order] or None) if i_order >= 0 else None
                if order_id is not None and len(order_id) > MAX_ID_LENGTH:
                    raise CellError("order_id", f"longer than {MAX_ID_LENGTH} characters")
                coupon = (row[i_coupon] or None) if i_coupon >= 0 else None
                if coupon is not None and len(coupon) > 64:
                    raise CellError("coupon_code", "longer than 64 characters")
                quantity = 1
                if i_quantity >= 0 and row[i_quantity]:
                    text = row[i_quantity]
                    # Length first: int() refuses digit strings over 4,300 long.
                    if (
                        len(text) > 12
                        or not text.strip().isdecimal()
                        or not 1 <= int(text) <= MAX_QUANTITY
                    ):
                        raise CellError(
                            "quantity",
                            f"not a whole number from 1 to {MAX_QUANTITY}: {shown(text)}",
                        )
                    quantity = int(text)
                amount = None
                if i_amount >= 0 and row[i_amount]:
                    text = row[i_amount]
                    match = money(text)
                    if match is None:
                        try:
                            amount = parse_amount(text, currency)
                        except ValueError as exc:
                            raise CellError("amount", str(exc)) from None
                    else:
                        whole, fraction = match.groups()
                        amount = int(whole) * scale + (
                            int(fraction.ljust(digits, "0")) if fraction else 0
                        )
                if amount is None and kind == "purchase":
                    raise CellError("amount", "required for purchase events")
                event_id = row[i_event] if i_event >= 0 else ""
                if event_id:
                    if len(event_id) > MAX_ID_LENGTH:
                        raise CellError("event_id", f"longer than {MAX_ID_LENGTH} characters")
                    if event_id in seen:
                        first = seen[event_id]
                        raise CellError(
                            "event_id", f"duplicate event_id {event_id!r} (first on line {first})"
                        )
                else:
                    # Normalized values, so '9.5' and '9.50' or '+08:00' and UTC hash alike.
                    event_id = HASH_PREFIX + blake2b(
                        f"{user_ref}\x1f{kind}\x1f{ts_text}\x1f{product_ref}\x1f{order_id}"
                        f"\x1f{quantity}\x1f{amount}\x1f{coupon}".encode(),
                        digest_size=16,
                    ).hexdigest()
                    if event_id in seen:
                        collapsed += 1
                        continue
                seen[event_id] = line
                records.append(
                    (user_id, product_id, kind, ts_text, order_id, quantity, amount, coupon,
                     event_id)
                )
                lines.append(line)
                raws.append(row)
            except CellError as exc:
                errors.append((error(line, exc.column or None, exc.reason), row))
            if count >= chunk_size:
                yield EventChunk(records, lines, raws, errors, collapsed, count)
                records, lines, raws, errors = [], [], [], []
                seen = {}
                collapsed = count = 0
    except (UnicodeDecodeError, csv.Error) as exc:
        raise csv_file.broken(exc) from None
    if count:
        yield EventChunk(records, lines, raws, errors, collapsed, count)
