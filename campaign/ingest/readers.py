"""CSV files → validated rows; every error names its file, line and column.

The CSV contract is DESIGN.md's: a header row, UTF-8, commas. This module opens and
sniffs a file (missing, empty, binary, wrong delimiter, not UTF-8, missing or unknown
columns), streams its rows with their line numbers, and turns cell text into typed
values (money → integer minor units of the shop's currency, timestamps → UTC,
booleans, tags...). It never touches
the database: lookups of external ids are plain dicts handed in by the loader.

Line numbers count the header as line 1, like an editor does.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from campaign.common.errors import InputError
from campaign.common.money import MAX_MINOR_UNITS, minor_digits, parse_amount, shown
from campaign.db.models import EventType

Kind = Literal["users", "products", "events", "responses"]

EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
MAX_ID_LENGTH = 128
HASH_PREFIX = "hash:"
_SNIFF_BYTES = 64 * 1024
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
_TOKEN = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_OTHER_DELIMITERS = ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes"))


@dataclass(frozen=True)
class FileSpec:
    """The columns one kind of file has (DESIGN.md "CSV contract")."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    # Extra columns go to the table's ``attributes`` JSON; without one they are errors.
    extras_allowed: bool


SPECS: dict[str, FileSpec] = {
    "users": FileSpec(
        ("user_id",),
        (
            "email",
            "phone",
            "name",
            "locale",
            "timezone",
            "consent_email",
            "consent_sms",
            "created_at",
        ),
        True,
    ),
    "products": FileSpec(
        ("product_id",),
        ("name", "category", "brand", "price", "tags", "in_stock", "url"),
        True,
    ),
    "events": FileSpec(
        ("user_id", "type", "ts"),
        ("event_id", "product_id", "order_id", "quantity", "amount", "coupon_code"),
        False,
    ),
    "responses": FileSpec(("message_id", "type", "ts"), ("event_id", "provider"), False),
}


class CellError(ValueError):
    """A cell's value is not acceptable; ``column`` names it. Turned into InputError."""

    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"{column}: {reason}")


# -- cell parsers (pure) -------------------------------------------------------------


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
    _check_year(value, text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_year(value: datetime, text: str) -> None:
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


# -- files ------------------------------------------------------------------------------


class CsvFile:
    """One open CSV file whose header passed the checks; iterate :meth:`rows`.

    Use :func:`open_csv`; close it (or use ``with``).
    """

    def __init__(
        self, path: Path, kind: str, handle: Any, header: list[str], currency: str = "CNY"
    ) -> None:
        self.path = path
        self.kind = kind
        # Amounts in the file are in this ISO 4217 currency (the shop's).
        self.currency = currency
        self.source = path.name
        self.header = header
        self.index = {name: i for i, name in enumerate(header)}
        spec = SPECS[kind]
        known = set(spec.required) | set(spec.optional)
        self.extras = [name for name in header if name not in known]
        # Extra columns that look like a mistyped contract column: (column, meant).
        self.lookalikes = [
            (name, meant) for name in self.extras if (meant := lookalike(name, kind))
        ]
        self._handle = handle
        self._reader = csv.reader(handle)
        # The header was read by a throwaway reader over the same handle.
        self._line_offset = 1

    def column(self, name: str) -> int:
        """Index of column ``name``, or -1 when the file does not have it."""
        return self.index.get(name, -1)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(line, cells)`` for every non-blank row after the header, streamed.

        Raises:
            InputError: bytes that are not UTF-8 (with line and byte) or broken quoting.
        """
        reader = self._reader
        offset = self._line_offset
        try:
            for row in reader:
                if row:
                    yield reader.line_num + offset, row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self.broken(exc) from None

    @property
    def reader(self) -> Any:
        """The underlying ``csv.reader`` (for hot loops): add :attr:`line_offset` to its
        ``line_num``, skip empty rows, and pass its errors through :meth:`broken`."""
        return self._reader

    @property
    def header_line(self) -> int:
        """The line of the header (1 unless blank lines precede it)."""
        return self._line_offset

    def lookalike_warnings(self) -> list[str]:
        """One line per extra column that looks like a mistyped contract column."""
        return [
            f"{self.source}:{self.header_line}: {name}: unknown column kept as an attribute; "
            f"did you mean {meant!r}?"
            for name, meant in self.lookalikes
        ]

    @property
    def line_offset(self) -> int:
        """Lines before the first data row that the reader did not count (the header)."""
        return self._line_offset

    def broken(self, exc: Exception) -> InputError:
        """The :class:`InputError` for a decoding or CSV syntax error of the reader."""
        if isinstance(exc, UnicodeDecodeError):
            return _decode_error(self.path, self.source)
        line = self._reader.line_num + self._line_offset + 1
        return InputError(self.source, f"malformed CSV: {exc}", line=line)

    def error(self, line: int, column: str | None, reason: str) -> InputError:
        """An :class:`InputError` at ``line``/``column`` of this file."""
        return InputError(self.source, reason, line=line, column=column)

    def close(self) -> None:
        """Close the underlying file."""
        self._handle.close()

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _decode_error(path: Path, source: str) -> InputError:
    """Find the first byte that is not UTF-8 and say where it is (a second, binary pass)."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InputError(
                    source,
                    f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte {offset + exc.start} "
                    f"(character {len(raw[: exc.start].decode('utf-8', 'replace')) + 1} "
                    "of the line); save the file as UTF-8",
                    line=number,
                )
            offset += len(raw)
    return InputError(source, "not UTF-8; save the file as UTF-8")


def open_csv(path: Path, kind: str, currency: str = "CNY") -> CsvFile:
    """Open ``path`` as a ``kind`` CSV file and check everything before the first row.

    Its amounts are read in ``currency`` (ISO 4217; the shop's ``[shop] currency``).

    Raises:
        InputError: missing file, not a file, empty, binary, not UTF-8, another
            delimiter than commas, blank or duplicate column names, missing required
            columns, or unknown columns where the table keeps no attributes.
    """
    source = path.name
    spec = SPECS[kind]
    minor_digits(currency)  # an unknown currency fails here, not on the first amount
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)
    if not path.exists():
        raise InputError(str(path), "file not found")
    if not path.is_file():
        raise InputError(str(path), "not a file")
    with path.open("rb") as raw:
        head = raw.read(_SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(source, "file is UTF-16 encoded; save it as UTF-8 CSV", line=1)
    if b"\x00" in head:
        position = head.index(b"\x00")
        raise InputError(source, f"binary file, not CSV (NUL byte at byte {position})")
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
        raise InputError(source, "file is empty; expected a header row")
    # utf-8-sig drops the byte-order mark spreadsheet programs like to write.
    handle = path.open("r", encoding="utf-8-sig", newline="")
    try:
        lines = 0
        header: list[str] = []
        try:
            header_reader = csv.reader(_first_record(handle))
            for row in header_reader:
                lines = header_reader.line_num
                if row:
                    header = row
                    break
        except UnicodeDecodeError:
            raise _decode_error(path, source) from None
        except csv.Error as exc:
            raise InputError(source, f"malformed CSV header: {exc}", line=1) from None
        header = [name.strip() for name in header]
        _check_header(source, spec, kind, header, lines)
        csv_file = CsvFile(path, kind, handle, header, currency)
        csv_file._line_offset = lines
        return csv_file
    except BaseException:
        handle.close()
        raise


def _first_record(handle: Any) -> Iterator[str]:
    """Lines of ``handle`` up to the first non-blank one (the header), without buffering
    beyond it, so the row reader continues exactly after the header."""
    while True:
        line = handle.readline()
        if not line:
            return
        yield line
        if line.strip():
            return


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def lookalike(column: str, kind: str) -> str | None:
    """The contract column of ``kind`` that ``column`` most likely mistypes, else None.

    ``e_mail``, ``E-Mail`` and ``mail`` suggest ``email``; a name far from every
    contract column (``vip``) suggests nothing, and neither does a contract column.
    """
    spec = SPECS[kind]
    known = spec.required + spec.optional
    if column in known:
        return None
    squashed = _squash(column)
    for name in known:
        if squashed and squashed == _squash(name):
            return name
    close = difflib.get_close_matches(column.lower(), known, n=1, cutoff=0.8)
    return close[0] if close else None


def _check_header(source: str, spec: FileSpec, kind: str, header: list[str], line: int) -> None:
    if len(header) == 1:
        for delimiter, name in _OTHER_DELIMITERS:
            if delimiter in header[0]:
                raise InputError(
                    source,
                    f"the header is separated by {name}, not commas; "
                    "save the file as comma-separated CSV",
                    line=line,
                )
    blank = [str(i + 1) for i, name in enumerate(header) if not name]
    if blank:
        raise InputError(source, f"column(s) {', '.join(blank)} have no name", line=line)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(source, f"duplicate column(s): {', '.join(duplicates)}", line=line)
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise InputError(
            source,
            f"missing required column(s): {', '.join(missing)} "
            f"(found: {', '.join(header)})",
            line=line,
        )
    if not spec.extras_allowed:
        known = set(spec.required) | set(spec.optional)
        unknown = [name for name in header if name not in known]
        if unknown:
            hints = [
                f"{name} (did you mean {meant!r}?)" if (meant := lookalike(name, kind)) else name
                for name in unknown
            ]
            raise InputError(
                source,
                f"unknown column(s): {', '.join(hints)}; {kind} files have only "
                f"{', '.join(spec.required + spec.optional)}",
                line=line,
            )


# -- rows → records ---------------------------------------------------------------------


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
    if _TOKEN.fullmatch(kind) is None:
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
    raws: list[list[str]]
    errors: list[tuple[InputError, list[str]]]
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
    csv_file: CsvFile,
    users: Mapping[str, int],
    products: Mapping[str, int],
    chunk_size: int = 20_000,
) -> Iterator[EventChunk]:
    """Stream ``events`` rows as validated :class:`EventChunk` of up to ``chunk_size`` rows.

    ``users`` / ``products`` map external ids to internal ids (what the database has);
    an unknown reference is an error. This loop is the import's hot path: it does no
    per-row allocation beyond the output tuple and avoids function calls where it can.
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
    raws: list[list[str]] = []
    errors: list[tuple[InputError, list[str]]] = []
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
                        _check_year(ts, text)
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
