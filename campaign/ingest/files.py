"""Opening a CSV file: the columns each kind has, and the checks before any row is read
(missing, empty, binary, wrong delimiter, not UTF-8, missing or unknown columns).

Line numbers count the header as line 1, like an editor does."""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from campaign.common.errors import InputError
from campaign.common.money import minor_digits
from campaign.ingest.cells import MAX_FIELD_CHARS

Kind = Literal["users", "products", "events", "responses", "experiments"]

_SNIFF_BYTES = 64 * 1024

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
    "experiments": FileSpec(
        ("user_id", "campaign", "group", "assigned_at", "converted"),
        ("revenue", "visited", "variant"),
        False,
    ),
}


class RowSource(Protocol):
    """What the events hot path (:func:`campaign.ingest.event_rows.event_chunks`), its
    loader and :class:`campaign.ingest.batches.Rejects` read: a CSV file, or Parquet
    files presented as the same rows of cell text (:mod:`campaign.ingest.parquet`).
    """

    source: str
    header: list[str]
    currency: str
    # The rejects side file's columns after the file's own: where each row was.
    position_columns: tuple[str, ...]

    def column(self, name: str) -> int:
        """Index of column ``name`` in every row, or -1 when the source lacks it."""
        ...

    @property
    def reader(self) -> Any:
        """Rows (sequences of cell text) with a ``line_num`` that the row's position is
        :attr:`line_offset` below."""
        ...

    @property
    def line_offset(self) -> int:
        """What to add to ``reader.line_num`` for the position :meth:`error` takes."""
        ...

    def broken(self, exc: Exception) -> InputError:
        """The :class:`InputError` for a decoding error of the reader."""
        ...

    def error(self, line: int, column: str | None, reason: str) -> InputError:
        """An :class:`InputError` at position ``line``/``column`` of this source."""
        ...

    def position(self, error: InputError) -> list[object]:
        """The values of :attr:`position_columns` for a rejected row's ``error``."""
        ...


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

    position_columns: tuple[str, ...] = ("line",)

    def position(self, error: InputError) -> list[object]:
        """The rejects file's ``line`` of a rejected row."""
        return [error.line]

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
        _check_header(source, kind, header, lines)
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


def _check_header(source: str, kind: str, header: list[str], line: int) -> None:
    if len(header) == 1:
        for delimiter, name in _OTHER_DELIMITERS:
            if delimiter in header[0]:
                raise InputError(
                    source,
                    f"the header is separated by {name}, not commas; "
                    "save the file as comma-separated CSV",
                    line=line,
                )
    check_columns(source, kind, header, line)


def check_columns(source: str, kind: str, header: list[str], line: int | None = None) -> None:
    """The column checks every file of ``kind`` passes, CSV or Parquet (``line`` is the
    header's, None where there is no header line).

    Raises:
        InputError: blank or duplicate names, missing required columns, or unknown
            columns where the table keeps no attributes (with a did-you-mean hint).
    """
    spec = SPECS[kind]
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
