"""Users and products: validated rows upserted on their external id, in batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from campaign.common.contacts import normalize_phone, region_of_locale
from campaign.ingest.batches import LOOKUP_BATCH, Counts, Progress, Rejects, chunks
from campaign.ingest.readers import CellError, CsvFile, product_record, user_record

_USER_DEFAULTS = {"consent_email": False, "consent_sms": False, "attributes": {}}
_PRODUCT_DEFAULTS = {"tags": [], "in_stock": True, "attributes": {}}


def load_entities(
    table: Table,
    id_column: str,
    connection: Connection,
    csv_file: CsvFile,
    rejects: Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
    *,
    phone_region: str | None = None,
) -> Counts:
    is_users = table.name == "users"
    to_record = user_record if is_users else product_record
    defaults = _USER_DEFAULTS if is_users else _PRODUCT_DEFAULTS
    counts = Counts()
    # External ids of one entity file: small next to events, so a set is fine here.
    seen: dict[str, int] = {}
    for chunk in chunks(csv_file.rows(), min(chunk_rows, LOOKUP_BATCH)):
        counts.rows += len(chunk)
        records: list[dict[str, Any]] = []
        for line, row in chunk:
            try:
                record = to_record(csv_file, row)
            except CellError as exc:
                rejects.add(csv_file.error(line, exc.column or None, exc.reason), row)
                continue
            if is_users and "phone" in record:
                # Matched in E.164 everywhere (campaign.common.contacts); the original is kept.
                raw = record["phone"]
                region = phone_region or region_of_locale(record.get("locale"))
                record["phone_original"] = raw
                record["phone"] = normalize_phone(raw, region)
            external_id = record["external_id"]
            if external_id in seen:
                first = seen[external_id]
                reason = f"duplicate {id_column} {external_id!r} (first on line {first})"
                rejects.add(csv_file.error(line, id_column, reason), row)
                continue
            seen[external_id] = line
            records.append(record)
        _upsert(connection, table, records, defaults, now, counts)
        advance(len(chunk))
    return counts


def _upsert(
    connection: Connection,
    table: Table,
    records: list[dict[str, Any]],
    defaults: dict[str, Any],
    now: datetime,
    counts: Counts,
) -> None:
    if not records:
        return
    ids = [record["external_id"] for record in records]
    existing = {
        row.external_id: row._mapping
        for row in connection.execute(select(table).where(table.c.external_id.in_(ids)))
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for record in records:
        old = existing.get(record["external_id"])
        if old is None:
            inserts.append({**defaults, **record, "updated_at": now})
            continue
        # A forgotten person (GDPR erasure) must not come back from an old export.
        if "forgotten_at" in old and old["forgotten_at"] is not None:
            counts.unchanged += 1
            continue
        new = {**record, "attributes": {**(old["attributes"] or {}), **record["attributes"]}}
        # Only columns the file has are compared and written: a partial file
        # never blanks the others.
        if all(old[key] == value for key, value in new.items()):
            counts.unchanged += 1
        else:
            updates.append({**new, "updated_at": now, "b_id": old["id"]})
    if inserts:
        connection.execute(insert(table), inserts)
        counts.inserted += len(inserts)
    if updates:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        connection.execute(statement, updates)
        counts.updated += len(updates)

