"""Responses from a provider export: deduped on the provider's event id, matched to
messages, with the same effects as the webhook (engagement, suppression)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from campaign.db.base import table_of
from campaign.db.models import Message, Response
from campaign.ingest.batches import LOOKUP_BATCH, Counts, Progress, Rejects, chunks
from campaign.ingest.readers import CellError, CsvFile, response_record
from campaign.responses.recording import apply_stored_responses


def load_responses(
    connection: Connection,
    csv_file: CsvFile,
    rejects: Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
    media: Mapping[str, str] | None = None,
) -> Counts:
    table = table_of(Response)
    counts = Counts()
    seen: dict[str, int] = {}
    for chunk in chunks(csv_file.rows(), min(chunk_rows, LOOKUP_BATCH)):
        counts.rows += len(chunk)
        records: list[dict[str, Any]] = []
        for line, row in chunk:
            try:
                record = response_record(csv_file, row)
            except CellError as exc:
                rejects.add(csv_file.error(line, exc.column or None, exc.reason), row)
                continue
            event_id = record["provider_event_id"]
            if event_id in seen:
                if record["hashed"]:
                    counts.unchanged += 1
                else:
                    reason = f"duplicate event_id {event_id!r} (first on line {seen[event_id]})"
                    rejects.add(csv_file.error(line, "event_id", reason), row)
                continue
            seen[event_id] = line
            records.append(record)
        _insert_responses(connection, table, records, now, counts, media)
        advance(len(chunk))
    return counts


def _message_number(ref: str) -> int | None:
    # messages.id is a bigint: longer digit strings cannot name one.
    return int(ref) if ref.isdecimal() and ref.isascii() and len(ref) <= 18 else None


def _insert_responses(
    connection: Connection,
    table: Table,
    records: list[dict[str, Any]],
    now: datetime,
    counts: Counts,
    media: Mapping[str, str] | None,
) -> None:
    if not records:
        return
    numbers = {n for r in records if (n := _message_number(r["message_ref"])) is not None}
    known: set[int] = set()
    if numbers:
        known = set(connection.execute(select(Message.id).where(Message.id.in_(numbers))).scalars())
    event_ids = [record["provider_event_id"] for record in records]
    stored = set(
        connection.execute(
            select(table.c.provider_event_id).where(table.c.provider_event_id.in_(event_ids))
        ).scalars()
    )
    rows: list[dict[str, Any]] = []
    for record in records:
        if record["provider_event_id"] in stored:
            counts.unchanged += 1
            continue
        number = _message_number(record["message_ref"])
        message_id = number if number in known else None
        if message_id is None:
            counts.unmatched += 1
        rows.append(
            {
                "message_id": message_id,
                "type": record["type"],
                "ts": record["ts"],
                "provider": record["provider"],
                "provider_event_id": record["provider_event_id"],
                # Kept so an unmatched response still says what it was about.
                "payload": {"message_id": record["message_ref"], "source": "csv"},
                "received_at": now,
            }
        )
    if rows:
        connection.execute(insert(table), rows)
        counts.inserted += len(rows)
        # The response pipeline owns what a response means (engagement, suppression);
        # a provider export imported here must have the same effects as its webhooks.
        counts.suppressions += apply_stored_responses(connection, rows, now=now, media=media)

