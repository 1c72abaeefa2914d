"""Validated rows → database: one transaction per file, batched upserts, dedupe, progress.

A file imports all or nothing: it is streamed in chunks inside one transaction, and
any invalid row makes the whole transaction roll back (the database is exactly as
before) while the first errors are reported. With ``skip_invalid`` the good rows are
committed and the bad ones written, with a ``reason`` column, to a side file.

Memory stays flat whatever the file size: only one chunk of rows is held, plus the
external-id → id lookups of users and products.

Per kind: users and products upsert on their external id (:mod:`.entities`), events
take the bulk path (:mod:`.event_store`), responses are matched to messages
(:mod:`.response_rows`); :mod:`.batches` holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from campaign.common.errors import InputError, InputErrors
from campaign.db.base import table_of
from campaign.db.models import Product, User
from campaign.ingest.batches import CHUNK_ROWS, MAX_REPORTED_ERRORS, Counts, Progress, Rejects
from campaign.ingest.entities import load_entities
from campaign.ingest.event_store import load_events
from campaign.ingest.experiment_rows import load_experiments
from campaign.ingest.parquet import ParquetEvents, is_parquet, open_parquet, parquet_row_count
from campaign.ingest.readers import CsvFile, Kind, open_csv
from campaign.ingest.response_rows import load_responses

__all__ = [
    "CHUNK_ROWS",
    "MAX_REPORTED_ERRORS",
    "ImportReport",
    "count_rows",
    "default_rejects_path",
    "import_csv",
    "import_file",
]


@dataclass(frozen=True)
class ImportReport:
    """What one import did. ``unchanged`` counts rows already in the database (or
    repeated in the file by content); ``unmatched`` counts responses whose
    ``message_id`` names no message (kept with ``message_id`` NULL)."""

    kind: str
    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejects_path: Path | None
    unmatched: int = 0
    suppressions: int = 0
    # One line per extra column that looks like a mistyped contract column.
    warnings: tuple[str, ...] = ()

    @property
    def all_rejected(self) -> bool:
        """Every row of the file was rejected (nothing of it is in the database)."""
        return self.rejected > 0 and self.rejected == self.rows_read

    def summary(self) -> str:
        """One line for people: ``events.csv: 366,226 rows, 366,100 inserted, ...``."""
        text = (
            f"{self.source}: {self.rows_read:,} rows, {self.inserted:,} inserted, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged, "
            f"{self.rejected:,} rejected"
        )
        if self.unmatched:
            text += f" ({self.unmatched:,} unmatched)"
        if self.suppressions:
            text += f", {self.suppressions:,} suppression(s) added"
        if self.rejects_path is not None:
            text += f"; rejected rows in {self.rejects_path}"
        return text



def default_rejects_path(path: Path) -> Path:
    """``<file>.rejected.csv`` next to the imported file."""
    return path.with_name(path.name + ".rejected.csv")


def import_file(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    media: Mapping[str, str] | None = None,
    phone_region: str | None = None,
    currency: str = "CNY",
    strict: bool = False,
) -> ImportReport:
    """Import one file of ``kind`` (users, products, events, responses, experiments):
    a CSV file, or for events also a Parquet file or a folder of them.

    Streams the file in chunks of ``chunk_rows`` inside one transaction. Users and
    products are upserted on their external id; events dedupe on ``event_id`` (stored
    as ``source_event_id``) or a content hash; responses dedupe on the provider event
    id and keep an unknown ``message_id`` as unmatched; experiments upsert on (campaign,
    user, assigned_at) and reject an unknown user. Re-importing a file changes
    nothing. Suppressions are never touched. ``progress(n)`` is called with the rows
    read after each chunk; ``now`` (UTC) stamps ``updated_at``/``received_at``.
    Imported responses have the same effects as webhook ones (engagement moves
    forward; unsubscribes, complaints and hard bounces suppress), for which ``media``
    maps channel names to ``email``/``sms`` (``config.channels``). Phones are stored
    in E.164 (national numbers read in ``phone_region``, else the country of the
    row's locale) with the file's own text in ``phone_original``. Amounts (product
    prices, event amounts) are read in ``currency`` (``[shop] currency``) and stored
    as its minor units (:mod:`campaign.common.money`).

    A path ending in ``.parquet``, or a folder, is Parquet (:mod:`.parquet`, needs the
    ``parquet`` extra): a folder imports all its ``*.parquet`` files, partition
    folders included, in sorted order as one file (one transaction, one report). Its
    rows pass the very validation of CSV rows.

    An extra column that looks like a mistyped contract column (``e_mail``) is kept as
    an attribute and reported in ``warnings``; with ``strict`` it is an error instead.

    Raises:
        InputError: the file cannot be read as this kind of CSV (or Parquet, or
            pyarrow is missing), or ``strict`` and a column looks mistyped (nothing
            imported).
        InputErrors: some rows are invalid and ``skip_invalid`` is off (nothing
            imported; the first :data:`MAX_REPORTED_ERRORS` are listed).
    """
    if kind not in ("users", "products", "events", "responses", "experiments"):
        raise InputError(str(path), f"unknown kind of file {kind!r}")
    now = now or datetime.now(UTC)
    advance = progress or (lambda n: None)
    source: CsvFile | ParquetEvents
    if is_parquet(path):
        source = open_parquet(path, kind, currency)
    else:
        source = open_csv(path, kind, currency)
    with source as csv_file:
        if strict and csv_file.lookalikes:
            raise InputError(
                csv_file.source,
                "unknown column(s) "
                + ", ".join(f"{name} (did you mean {meant!r}?)"
                            for name, meant in csv_file.lookalikes)
                + "; nothing imported (--strict)",
                line=csv_file.header_line,
            )
        rejects = Rejects(csv_file, skip_invalid, rejects_path or default_rejects_path(path))
        try:
            with engine.connect() as connection, connection.begin():
                if not isinstance(csv_file, CsvFile):
                    counts = load_events(
                        connection, csv_file, rejects, advance, now, chunk_rows
                    )
                elif kind == "responses":
                    counts = load_responses(
                        connection, csv_file, rejects, advance, now, chunk_rows, media
                    )
                elif kind == "users":
                    counts = load_entities(
                        table_of(User), "user_id", connection, csv_file, rejects, advance,
                        now, chunk_rows, phone_region=phone_region,
                    )
                else:
                    counts = _LOADERS[kind](
                        connection, csv_file, rejects, advance, now, chunk_rows
                    )
                if rejects.total and not skip_invalid:
                    raise InputErrors(csv_file.source, rejects.errors, rejects.total)
        except BaseException:
            rejects.discard()
            raise
        rejects.close()
    return ImportReport(
        kind=kind,
        source=csv_file.source,
        rows_read=counts.rows,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=rejects.total,
        rejects_path=rejects.written(),
        unmatched=counts.unmatched,
        suppressions=counts.suppressions,
        warnings=tuple(csv_file.lookalike_warnings()),
    )


# The name it had when only CSV existed; every caller may keep it.
import_csv = import_file


_LOADERS: dict[
    str, Callable[[Connection, CsvFile, Rejects, Progress, datetime, int], Counts]
] = {
    # Users and products load alike: an upsert on the external id.
    "users": partial(load_entities, table_of(User), "user_id"),
    "products": partial(load_entities, table_of(Product), "product_id"),
    "events": load_events,
    "experiments": load_experiments,
}


def count_rows(path: Path) -> int | None:
    """Data lines in ``path`` (newlines minus the header), for a progress bar's total;
    None when the file cannot be read. Cheap: counts bytes, does not parse. For
    Parquet (a ``.parquet`` file or a folder) the rows in the files' metadata."""
    if is_parquet(path):
        return parquet_row_count(path)
    try:
        with path.open("rb") as handle:
            newlines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None
    return max(newlines - 1, 0)

