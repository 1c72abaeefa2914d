"""A shop's past A/B tests (``experiments.csv``): validated rows upserted on
(campaign, user, assigned_at), in batches.

Columns: ``user_id,campaign,group,assigned_at,converted`` required (``group`` is
``treatment`` or ``control``), ``revenue`` (in the shop's currency), ``visited`` and
``variant`` optional. A user the database does not know is an error (import users
first), like in events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from campaign.common.money import parse_amount, shown
from campaign.db.base import table_of
from campaign.db.models import ExperimentAssignment, User
from campaign.ingest.batches import LOOKUP_BATCH, Counts, Progress, Rejects, chunks
from campaign.ingest.cells import CellError, parse_bool, parse_timestamp
from campaign.ingest.files import CsvFile

GROUPS = ("treatment", "control")
MAX_CAMPAIGN_LENGTH = 64
_COMPARED = ("group", "converted", "revenue_cents", "visited", "variant")


def experiment_record(
    csv_file: CsvFile, row: list[str], users: dict[str, int]
) -> dict[str, Any]:
    """One ``experiment_assignments`` row: campaign, user_id (our id), group,
    assigned_at (aware UTC), converted (bool), revenue_cents (int or None), visited
    (bool or None), variant (str or None).

    Raises:
        CellError: a value is missing, malformed, too long, or names an unknown user.
    """
    if len(row) != len(csv_file.header):
        raise CellError("", f"expected {len(csv_file.header)} fields, found {len(row)}")
    col = csv_file.column
    user_ref = row[col("user_id")].strip()
    if not user_ref:
        raise CellError("user_id", "required")
    user_id = users.get(user_ref)
    if user_id is None:
        raise CellError("user_id", f"unknown user {shown(user_ref)} (import users first)")
    campaign = row[col("campaign")].strip()
    if not campaign:
        raise CellError("campaign", "required")
    if len(campaign) > MAX_CAMPAIGN_LENGTH:
        raise CellError("campaign", f"longer than {MAX_CAMPAIGN_LENGTH} characters")
    group = row[col("group")].strip().lower()
    if group not in GROUPS:
        raise CellError("group", f"not 'treatment' or 'control': {shown(row[col('group')])}")
    try:
        assigned_at = parse_timestamp(row[col("assigned_at")])
    except ValueError as exc:
        raise CellError("assigned_at", str(exc)) from None
    converted_text = row[col("converted")]
    if not converted_text.strip():
        raise CellError("converted", "required")
    try:
        converted = parse_bool(converted_text, False)
    except ValueError as exc:
        raise CellError("converted", str(exc)) from None
    record: dict[str, Any] = {
        "campaign": campaign, "user_id": user_id, "group": group,
        "assigned_at": assigned_at, "converted": converted,
        "revenue_cents": None, "visited": None, "variant": None,
    }
    if col("revenue") >= 0 and (text := row[col("revenue")].strip()):
        try:
            record["revenue_cents"] = parse_amount(text, csv_file.currency)
        except ValueError as exc:
            raise CellError("revenue", str(exc)) from None
    if col("visited") >= 0 and row[col("visited")].strip():
        try:
            record["visited"] = parse_bool(row[col("visited")], False)
        except ValueError as exc:
            raise CellError("visited", str(exc)) from None
    if col("variant") >= 0 and (variant := row[col("variant")].strip()):
        if len(variant) > MAX_CAMPAIGN_LENGTH:
            raise CellError("variant", f"longer than {MAX_CAMPAIGN_LENGTH} characters")
        record["variant"] = variant
    return record


def load_experiments(
    connection: Connection,
    csv_file: CsvFile,
    rejects: Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
) -> Counts:
    """Upsert the file's rows on (campaign, user, assigned_at); counts what changed.

    A key repeated in the file is rejected (naming the first line); a row equal to the
    stored one is ``unchanged``, so re-importing a file changes nothing.
    """
    users_table = table_of(User)
    users = {ext: id_ for ext, id_ in connection.execute(
        select(users_table.c.external_id, users_table.c.id))}
    counts = Counts()
    seen: dict[tuple[str, int, datetime], int] = {}
    for chunk in chunks(csv_file.rows(), min(chunk_rows, LOOKUP_BATCH)):
        counts.rows += len(chunk)
        records: list[dict[str, Any]] = []
        for line, row in chunk:
            try:
                record = experiment_record(csv_file, row, users)
            except CellError as exc:
                rejects.add(csv_file.error(line, exc.column or None, exc.reason), row)
                continue
            key = (record["campaign"], record["user_id"], record["assigned_at"])
            if key in seen:
                reason = (f"duplicate (campaign, user_id, assigned_at) "
                          f"(first on line {seen[key]})")
                rejects.add(csv_file.error(line, "user_id", reason), row)
                continue
            seen[key] = line
            records.append(record)
        _upsert(connection, records, now, counts)
        advance(len(chunk))
    return counts


def _upsert(
    connection: Connection, records: list[dict[str, Any]], now: datetime, counts: Counts
) -> None:
    if not records:
        return
    table = table_of(ExperimentAssignment)
    pairs = sorted({(r["campaign"], r["user_id"]) for r in records})
    existing: dict[tuple[str, int, datetime], Any] = {}
    for row in connection.execute(
        select(table).where(tuple_(table.c.campaign, table.c.user_id).in_(pairs))
    ).mappings():
        existing[(row["campaign"], row["user_id"], row["assigned_at"])] = row
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for record in records:
        old = existing.get((record["campaign"], record["user_id"], record["assigned_at"]))
        if old is None:
            inserts.append({**record, "imported_at": now})
        elif all(old[name] == record[name] for name in _COMPARED):
            counts.unchanged += 1
        else:
            updates.append({**{name: record[name] for name in _COMPARED},
                            "imported_at": now, "b_id": old["id"]})
    if inserts:
        connection.execute(insert(table), inserts)
        counts.inserted += len(inserts)
    if updates:
        connection.execute(update(table).where(table.c.id == bindparam("b_id")), updates)
        counts.updated += len(updates)
