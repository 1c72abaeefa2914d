"""CSV files people open in spreadsheets: one writer, safe against formula injection.

Shop ids, product names and other text we did not write ourselves end up in the
CSVs of ``campaign score --output``, ``recommend --output`` and ``coupons export``.
A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some
programs, a tab or carriage return) as a formula: ``=cmd|'/c calc'!A1`` in a user id
would run on the marketer's machine. :func:`write_csv` therefore writes such text
cells with a leading single quote, as OWASP recommends; numbers stay numbers (a risk
of ``-0.5`` is not text). ``raw=True`` writes text unchanged for programs that join
on ids and never open the file in a spreadsheet.

Pure: the caller opens the file.
"""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def cell(value: Any, *, raw: bool = False) -> str:
    """One CSV cell: numbers as they are, booleans ``true``/``false``, missing values
    (None, NaN) empty, and text neutralized unless ``raw``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Number):
        if isinstance(value, float) and math.isnan(value):
            return ""
        return str(value)
    text = str(value)
    return text if raw else neutralize(text)


def write_csv(
    out: TextIO,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw: bool = False,
) -> int:
    """Write ``header`` and ``rows`` to ``out`` as CSV (``\\n`` line ends); returns the
    number of rows. Text cells are neutralized (:func:`neutralize`) unless ``raw``;
    pass numbers as numbers (int, float, Decimal) so they are written as such."""
    # csv quotes a field only for the characters of its line terminator, so with "\n"
    # a carriage return inside a cell would go out bare and split the row for readers.
    # Write "\r\n" (both get quoted) and turn each line's ending back into "\n".
    writer = csv.writer(_NewlineEndings(out), lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([cell(value, raw=raw) for value in row])
        count += 1
    return count


class _NewlineEndings:
    """A text sink that ends every line csv writes with ``\n`` instead of ``\r\n``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, line: str) -> int:
        # csv writes one whole row per call, its terminator last.
        if line.endswith("\r\n"):
            line = line[:-2] + "\n"
        return self._out.write(line)
