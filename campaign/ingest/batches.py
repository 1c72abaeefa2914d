"""What every loader shares: row counts, the rejects side file, chunking, batch sizes."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from campaign.common.errors import InputError
from campaign.ingest.files import RowSource

MAX_REPORTED_ERRORS = 20
CHUNK_ROWS = 20_000
# Rows per lookup of existing ids (and per chunk of the small tables).
LOOKUP_BATCH = 5_000

Progress = Callable[[int], None]


@dataclass
class Counts:
    """What a loader did with the rows it read (the report's figures)."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unmatched: int = 0
    suppressions: int = 0


class Rejects:
    """Keeps the first errors for the report; with ``skip_invalid`` also writes every
    rejected row, plus where it was (``line`` of a CSV file; ``file`` and ``row`` of
    Parquet) and ``reason`` columns, to the side file (lazily)."""

    def __init__(self, csv_file: RowSource, skip_invalid: bool, path: Path) -> None:
        self.csv_file = csv_file
        self.skip_invalid = skip_invalid
        self.path = path
        self.errors: list[InputError] = []
        self.total = 0
        self._handle: Any = None
        self._writer: Any = None

    def add(self, error: InputError, row: Sequence[str]) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        if self.skip_invalid:
            if self._writer is None:
                self._handle = self.path.open("w", encoding="utf-8", newline="")
                self._writer = csv.writer(self._handle)
                self._writer.writerow(
                    [*self.csv_file.header, *self.csv_file.position_columns, "reason"]
                )
            reason = f"{error.column}: {error.reason}" if error.column else error.reason
            self._writer.writerow([*row, *self.csv_file.position(error), reason])

    def written(self) -> Path | None:
        return self.path if self._writer is not None else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def discard(self) -> None:
        """Remove a half-written side file after a fatal error (nothing was imported)."""
        self.close()
        if self._writer is not None:
            self.path.unlink(missing_ok=True)
            self._writer = None


def chunks(
    rows: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    """``rows`` in lists of at most ``size``."""
    while chunk := list(islice(rows, size)):
        yield chunk

