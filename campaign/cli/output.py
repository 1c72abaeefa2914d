"""Output of the reading commands: terminal tables that never cut a number, JSON, CSV.

``report``, ``evaluate``, ``status`` and ``preview`` take ``--format table|json|csv``.
Each builds *sections*: a name, its declared fields and a list of records (flat
dicts of plain values). ``json`` prints ``{"<section>": [records...], ...}`` with
exactly the declared fields in every record; ``csv`` prints one header row
(``section``, then the union of every section's declared fields, in order) and one
row per record, so the header is the same whatever the data. Field names are
documented in docs/output.md and kept stable; numbers are raw there (no thousands
separators, money in minor units as ``*_cents``), timestamps ISO 8601 in UTC,
missing values ``null`` (JSON) or empty (CSV).

Terminal tables use :func:`print_table`: numeric columns never wrap or shrink; when
a table is wider than the terminal (or than 80 columns when piped), it is printed
wider instead of cutting digits. Counts use :func:`count` (``366,226``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from campaign.cli.common import console

Record = Mapping[str, Any]


@dataclass
class Section:
    """One part of a command's output: its field names (stable) and its records."""

    fields: tuple[str, ...]
    rows: Sequence[Record] = field(default_factory=list)


Sections = Mapping[str, Section]


class OutputFormat(StrEnum):
    """What ``--format`` accepts."""

    table = "table"
    json = "json"
    csv = "csv"


def format_option() -> Any:
    """The ``--format`` option (default: table)."""
    return typer.Option(
        OutputFormat.table, "--format", case_sensitive=False,
        help="table (for people), json or csv (for machines; fields in docs/output.md).",
    )


def count(value: int | float | None) -> str:
    """A count with thousands separators: ``366,226``; ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{int(value):,}"


def _cell_width(cell: Any) -> int:
    if isinstance(cell, Text):
        return max((cell_len(line) for line in cell.plain.splitlines()), default=0)
    if isinstance(cell, str):
        return max((cell_len(line) for line in cell.splitlines()), default=0)
    return 0


def print_table(table: Table) -> None:
    """Print ``table`` without ever cutting a number.

    Right-aligned columns (numbers, dates) neither wrap nor shrink; text columns may
    fold. When even that does not fit the console, the table is printed at the width
    it needs (the terminal wraps the line; a pipe gets it whole).
    """
    for column in table.columns:
        if column.justify == "right" or column.no_wrap:
            column.no_wrap = True
            widest = max((_cell_width(cell) for cell in column._cells), default=0)
            column.min_width = max(column.min_width or 0, widest)
        elif column.overflow == "ellipsis":
            column.overflow = "fold"
    needed = _needed_width(table)
    if needed <= console.width:
        console.print(table)
        return
    # Console.print never lays out wider than the console: use one as wide as needed.
    wide = Console(
        file=console.file, width=needed, highlight=False,
        force_terminal=console.is_terminal, color_system=console.color_system or None,  # type: ignore[arg-type]
        no_color=console.no_color,
    )
    wide.print(table, crop=False)


def _needed_width(table: Table) -> int:
    """The narrowest width at which no no-wrap column is cut: those at their full width
    (header included), text columns at their longest word, plus borders and padding."""
    options = console.options.update_width(100_000)
    try:
        measures = [table._measure_column(console, options, c) for c in table.columns]
        extra = table._extra_width
    except AttributeError:  # another rich: let it lay the table out by itself
        return 0
    return extra + sum(
        m.maximum if column.no_wrap else m.minimum
        for m, column in zip(measures, table.columns, strict=True)
    )


def plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy and pandas values unwrapped, NaN → None, times ISO."""
    if value is None:
        return None
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        try:
            return isoformat()
        except ValueError:  # pandas NaT
            return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value != value:  # pandas NA and NaT
        return None
    return str(value)


def records(frame: Any, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """A pandas frame's rows as records of plain values (``columns`` picks and orders)."""
    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    if frame.empty:  # an empty frame may have no columns at all (nothing planned yet)
        return []
    return [
        {name: plain(value) for name, value in zip(names, row, strict=True)}
        for row in frame[names].itertuples(index=False, name=None)
    ]


def emit(sections: Sections, fmt: OutputFormat) -> None:
    """Write ``sections`` to stdout as JSON or CSV (see the module docstring)."""
    cleaned = {
        name: [{f: plain(row.get(f)) for f in section.fields} for row in section.rows]
        for name, section in sections.items()
    }
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    fields: dict[str, None] = {"section": None}
    for section in sections.values():
        fields.update(dict.fromkeys(section.fields))
    from campaign.common.exports import write_csv

    # One CSV writer for the product: text a spreadsheet would run as a formula gets a
    # leading quote (campaign.common.exports); numbers, money included, stay numbers.
    write_csv(
        sys.stdout,
        list(fields),
        (
            [
                name if f == "section"
                else _csv_value(row.get(f)) if f in section.fields else None
                for f in fields
            ]
            for name, section in sections.items()
            for row in section.rows
        ),
    )
    sys.stdout.flush()


def _csv_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value  # a number to the writer (plain() would make it text)
    value = plain(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
