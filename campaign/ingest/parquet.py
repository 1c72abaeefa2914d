"""Parquet events: one file, or a folder of them as a lake export writes them, read row
group by row group as the same rows of cell text a CSV file gives.

The rows go through the CSV import's own validation
(:func:`campaign.ingest.event_rows.event_chunks`), so both formats accept and refuse
exactly the same values with the same messages: this module only turns Arrow
columns into cell text (strings as they are, integers and decimals in their decimal
form, timestamps as naive-UTC ISO text, nulls as empty cells) and says where a row
came from (file, row, row group). Memory stays flat: :meth:`ParquetEvents.rows`
holds one batch of one row group at a time, never the whole file.

pyarrow is the optional ``parquet`` extra; it is imported here, when a Parquet file
is opened, never when the package or the command line loads.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import unquote

from campaign.common.errors import InputError
from campaign.common.money import minor_digits
from campaign.ingest.files import SPECS, check_columns

PARQUET_SUFFIX = ".parquet"

INSTALL_HINT = "reading Parquet needs pyarrow: pip install 'campaign[parquet]'"

# Rows per Arrow batch turned into Python cells at a time (a row group is read in
# batches of this size; a batch never spans two row groups).
BATCH_ROWS = 16_384

# What a lake export writes into a partition folder's name for a null value.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

# The Arrow types each events column accepts (the rest is refused when the file opens).
_TEXT = ("string", "integer")
_ACCEPTED: dict[str, tuple[str, ...]] = {
    "ts": ("string", "timestamp", "date"),
    "amount": ("string", "integer", "decimal", "floating"),
    "type": ("string",),
    "coupon_code": ("string", "integer"),
}
_ACCEPTED_WORDS = {
    "string": "string",
    "integer": "integer",
    "timestamp": "timestamp",
    "date": "date",
    "decimal": "decimal",
    "floating": "floating-point",
}


def is_parquet(path: Path) -> bool:
    """Whether ``path`` names Parquet input: a ``*.parquet`` file or a folder."""
    return path.suffix.lower() == PARQUET_SUFFIX or path.is_dir()


def parquet_available() -> bool:
    """Whether pyarrow (the ``parquet`` extra) can be imported."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _pyarrow(source: str) -> tuple[ModuleType, ModuleType]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise InputError(source, INSTALL_HINT) from None
    return pyarrow, pyarrow.parquet


def _hidden(name: str) -> bool:
    # Lake writers' bookkeeping: _SUCCESS, _temporary/, .part-0.parquet.crc, _delta_log/.
    return name.startswith(("_", "."))


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files ``path`` names: itself, or every ``*.parquet`` file under the
    folder (nested ``key=value`` partition folders too), sorted by their path below
    it; names starting with ``_`` or ``.`` (``_SUCCESS``, ``_temporary/``) are skipped.

    Raises:
        InputError: the path does not exist, or the folder holds no Parquet file.
    """
    if not path.exists():
        raise InputError(str(path), "file not found")
    if not path.is_dir():
        return [path]
    found = [
        file
        for file in path.rglob(f"*{PARQUET_SUFFIX}")
        if file.is_file()
        and not any(_hidden(part) for part in file.relative_to(path).parts)
    ]
    if not found:
        raise InputError(str(path), f"no {PARQUET_SUFFIX} files in the folder")
    return sorted(found, key=lambda file: file.relative_to(path).parts)


def partition_values(relative: Path) -> dict[str, str]:
    """``{key: value}`` of the ``key=value`` folders in ``relative`` (a file's path
    below the imported folder), URL-unquoted as lake writers quote them; a null
    partition (``__HIVE_DEFAULT_PARTITION__``) is an empty value."""
    values: dict[str, str] = {}
    for part in relative.parts[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            text = unquote(value)
            values[unquote(key).strip()] = "" if text == _HIVE_NULL else text
    return values


def parquet_row_count(path: Path) -> int | None:
    """Rows in the Parquet file or folder ``path``, from the files' metadata (for a
    progress bar's total); None when pyarrow is missing or a file cannot be read."""
    try:
        _pa, pq = _pyarrow(path.name)
        return sum(pq.read_metadata(str(file)).num_rows for file in parquet_files(path))
    except Exception:
        return None


@dataclass
class _Part:
    """One Parquet file of the import: where its rows sit among all rows, and how each
    events column is read from it."""

    path: Path
    name: str
    first_row: int  # rows of the files before it
    group_starts: list[int]  # its row groups' first rows, 0-based within the file
    # events column -> the file's column name and Arrow type, or a partition's value.
    columns: dict[str, tuple[str, Any]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)


class ParquetEvents:
    """Parquet events files whose columns passed the checks, as rows of cell text.

    The same interface :func:`campaign.ingest.event_rows.event_chunks` reads a
    :class:`campaign.ingest.files.CsvFile` through (:class:`~campaign.ingest.files.RowSource`):
    :attr:`header` is every events column any file has, in the contract's order;
    :attr:`reader` yields one tuple of cells per row, files one after the other, and
    its ``line_num`` counts rows across the files, which :meth:`error` turns back into
    file, row and row group. Use :func:`open_parquet`.
    """

    position_columns: tuple[str, ...] = ("file", "row")
    # Events keep no attributes, so there are no lookalike columns to warn about:
    # every unknown column is an error (with its did-you-mean hint) when a file opens.
    lookalikes: list[tuple[str, str]] = []
    header_line: int = 1
    line_offset: int = 0

    def __init__(
        self, source: str, kind: str, parts: list[_Part], header: list[str], currency: str,
        pyarrow: ModuleType, parquet: ModuleType,
    ) -> None:
        self.source = source
        self.kind = kind
        self.currency = currency
        self.header = header
        self.index = {name: i for i, name in enumerate(header)}
        self.parts = parts
        self.total_rows = sum(part.group_starts[-1] for part in parts)
        self._starts = [part.first_row for part in parts]
        self._pa = pyarrow
        self._pq = parquet
        self.line_num = 0

    def column(self, name: str) -> int:
        """Index of column ``name`` in every row, or -1 when no file has it."""
        return self.index.get(name, -1)

    @property
    def reader(self) -> ParquetEvents:
        """Itself: iterating gives the rows, ``line_num`` the last row's number."""
        return self

    def __iter__(self) -> Iterator[Sequence[str]]:
        return self.rows()

    def rows(self) -> Iterator[Sequence[str]]:
        """One tuple of cell text per row (in :attr:`header` order), streamed batch by
        batch; updates :attr:`line_num` (rows so far, across the files).

        Raises:
            InputError: a file cannot be read (corrupt, truncated), with its name.
        """
        arrow_error = self._pa.ArrowException
        count = 0
        for part in self.parts:
            wanted = sorted({name for name, _type in part.columns.values()})
            try:
                # Arrow's own file: read without the GIL, closed when done.
                with self._pa.OSFile(str(part.path)) as handle:
                    parquet_file = self._pq.ParquetFile(handle)
                    # Row group by row group: pyarrow would otherwise merge small
                    # groups into one batch, and a batch should never span two.
                    for group in range(parquet_file.metadata.num_row_groups):
                        for batch in parquet_file.iter_batches(
                            batch_size=BATCH_ROWS, row_groups=[group], columns=wanted
                        ):
                            for row in zip(*self._cells(part, batch), strict=True):
                                count += 1
                                self.line_num = count
                                yield row
            except (arrow_error, OSError) as exc:
                raise InputError(part.name, f"cannot read the Parquet file: {exc}") from None

    def _cells(self, part: _Part, batch: Any) -> list[Any]:
        """The batch's columns as sequences of cell text, in :attr:`header` order."""
        size = batch.num_rows
        names = batch.schema.names
        cells: list[Any] = []
        for name in self.header:
            if name in part.columns:
                array = batch.column(names.index(part.columns[name][0]))
                cells.append(_text_cells(self._pa, array, size))
            else:
                cells.append(repeat(part.constants.get(name, ""), size))
        return cells

    def _locate(self, line: int) -> tuple[_Part, int, int]:
        """The file, its 1-based row and 1-based row group of row ``line`` (1-based,
        across the files)."""
        part = self.parts[bisect.bisect_right(self._starts, line - 1) - 1]
        row = line - part.first_row
        group = bisect.bisect_right(part.group_starts, row - 1)
        return part, row, min(group, len(part.group_starts) - 1)

    def error(self, line: int, column: str | None, reason: str) -> InputError:
        """An :class:`InputError` naming the file, row and row group of row ``line``."""
        part, row, group = self._locate(line)
        return InputError(part.name, reason, line=row, column=column, row_group=group)

    def position(self, error: InputError) -> list[object]:
        """The rejects file's ``file`` and ``row`` of a rejected row."""
        return [error.source, error.line]

    def broken(self, exc: Exception) -> InputError:
        """The :class:`InputError` for a read failure the rows did not name themselves."""
        return InputError(self.source, f"cannot read the Parquet file: {exc}")

    def lookalike_warnings(self) -> list[str]:
        """None: events files have no attributes (unknown columns are errors)."""
        return []

    def close(self) -> None:
        """Nothing to close: each file is open only while its rows are read."""

    def __enter__(self) -> ParquetEvents:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _text_cells(pa: ModuleType, array: Any, size: int) -> Any:
    """An Arrow array as cell text: what a CSV export of the same column would hold."""
    types = pa.types
    if types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if types.is_null(kind):
        return repeat("", size)
    if types.is_decimal(kind):
        # Fixed-point text of the exact value ('258.00', never '2.58E+2'); pyarrow
        # before 13 cannot cast decimals to strings itself.
        return ["" if value is None else format(value, "f") for value in array.to_pylist()]
    if types.is_timestamp(kind):
        # Arrow keeps the UTC instant whatever the zone (the zone is only how to show
        # it): dropping it leaves naive UTC, which is what naive text means. Whole
        # seconds (the usual case) as 'YYYY-MM-DD HH:MM:SS', the shape event_chunks
        # slices instead of parsing; a safe cast refuses to drop a fraction.
        try:
            array = array.cast(pa.timestamp("s"))
        except pa.ArrowInvalid:
            array = array.cast(pa.timestamp(kind.unit))
    if not (types.is_string(kind) or types.is_large_string(kind)):
        array = array.cast(pa.string())
    cells = array.to_pylist()
    if array.null_count:
        # Not Arrow's fill_null: making its "" scalar imports pandas (70 MB, seconds).
        cells = ["" if value is None else value for value in cells]
    return cells


def _family(pa: ModuleType, kind: Any) -> str | None:
    types = pa.types
    if types.is_dictionary(kind):
        kind = kind.value_type
    if types.is_string(kind) or types.is_large_string(kind):
        return "string"
    if types.is_integer(kind):
        return "integer"
    if types.is_timestamp(kind):
        return "timestamp"
    if types.is_date(kind):
        return "date"
    if types.is_decimal(kind):
        return "decimal"
    if types.is_floating(kind):
        return "floating"
    if types.is_null(kind):
        return "null"
    return None


def _check_type(pa: ModuleType, source: str, column: str, kind: Any) -> None:
    family = _family(pa, kind)
    accepted = _ACCEPTED.get(column, _TEXT)
    if family == "null" or family in accepted:
        return
    words = [_ACCEPTED_WORDS[name] for name in accepted]
    choices = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    raise InputError(
        source, f"Parquet type {kind} is not accepted (a {choices} column is)", column=column
    )


def open_parquet(path: Path, kind: str, currency: str = "CNY") -> ParquetEvents:
    """Open the Parquet file or folder ``path`` as ``kind`` and check every file's
    columns (names and types, from the metadata) before the first row is read.

    Only events import from Parquet. Column names follow the CSV contract
    (docs/import.md); a partition folder ``key=value`` whose key is an events column
    the file lacks supplies that column's value, other partition keys (``dt=...``)
    are ignored. Amounts are read in ``currency`` (ISO 4217).

    Raises:
        InputError: pyarrow is missing (with the extra to install), the kind is not
            events, the path is missing or holds no Parquet file, a file is not
            Parquet, or its columns are missing, unknown, duplicated or of a type the
            column does not accept (each with the file's name).
    """
    folder = path.is_dir()
    source = f"{path.name}/" if folder else path.name
    if kind != "events":
        raise InputError(
            source, f"only events import from Parquet; import {kind} from a CSV file"
        )
    minor_digits(currency)  # an unknown currency fails here, not on the first amount
    files = parquet_files(path)
    pa, pq = _pyarrow(source)
    spec = SPECS[kind]
    contract = spec.required + spec.optional
    parts: list[_Part] = []
    present: set[str] = set()
    first_row = 0
    for file in files:
        relative = file.relative_to(path) if folder else Path(file.name)
        name = f"{path.name}/{relative.as_posix()}" if folder else file.name
        try:
            with pa.OSFile(str(file)) as handle:
                parquet_file = pq.ParquetFile(handle)
                metadata = parquet_file.metadata
                schema = parquet_file.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise InputError(name, f"not a Parquet file ({exc})") from None
        stored = list(schema.names)
        columns = {column.strip(): column for column in stored}
        header = [column.strip() for column in stored]
        constants = {
            key: value
            for key, value in (partition_values(relative) if folder else {}).items()
            if key in contract and key not in columns
        }
        check_columns(name, kind, header + list(constants))
        for column in header:
            _check_type(pa, name, column, schema.field(columns[column]).type)
        starts = [0]
        for group in range(metadata.num_row_groups):
            starts.append(starts[-1] + metadata.row_group(group).num_rows)
        part = _Part(
            file, name, first_row, starts,
            {column: (columns[column], schema.field(columns[column]).type)
             for column in header},
            constants,
        )
        parts.append(part)
        present.update(header, constants)
        first_row += starts[-1]
    header = [column for column in contract if column in present]
    return ParquetEvents(source, kind, parts, header, currency, pa, pq)
