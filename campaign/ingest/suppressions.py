"""``campaign import suppressions FILE.csv``: a do-not-contact list from another provider.

Columns (header row, UTF-8, comma-separated): ``address`` (an email or a phone
number, required), ``channel`` (``email``, ``sms``, ``all`` or a configured channel
name; empty means the address's own medium) and ``reason`` (free text, default
``imported``). Phones are matched in E.164 (:mod:`campaign.common.contacts`, national
numbers read in ``[shop] phone_region``). Each row becomes one ``suppressions`` row
keyed by the SHA-256 of the normalized address, plus the user id when a user has
that address; rows already present change nothing, so a re-import is harmless. The
file is checked whole first: one bad row and nothing is imported, every bad row is
reported as ``file:line: column: reason``.
"""

from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine

from campaign.common.contacts import address_hash, looks_like_phone, normalize_address
from campaign.common.errors import InputError, InputErrors
from campaign.db.base import table_of
from campaign.db.models import Suppression, User
from campaign.db.queries import ALL_CHANNELS

_suppressions = table_of(Suppression)
_users = table_of(User)
MAX_REPORTED = 20
_CHANNEL_CHARS = 16


@dataclass(frozen=True)
class SuppressionImport:
    """What an import did."""

    source: str
    rows: int
    added: int
    already: int
    matched_users: int

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.source}: {self.rows} row(s), {self.added} suppression(s) added,"
            f" {self.already} already suppressed, {self.matched_users} matched a user"
        )


@dataclass(frozen=True)
class _Row:
    line: int
    address: str
    channel: str
    reason: str


def import_suppressions(
    engine: Engine,
    path: Path,
    *,
    now: datetime,
    channels: Collection[str] = (),
    phone_region: str | None = None,
) -> SuppressionImport:
    """Add the file's suppressions in one transaction (see the module docstring).

    ``channels`` are the configured channel names a row may name besides ``email``,
    ``sms`` and ``all``.

    Raises:
        InputError: the file cannot be read or has no ``address`` column.
        InputErrors: some rows are invalid (nothing is imported).
    """
    source = str(path)
    rows = _read(path, source, set(channels), phone_region)
    with engine.begin() as connection:
        digests = {row.address: address_hash(row.address) for row in rows}
        owners: dict[str, int] = {}
        addresses = sorted(set(digests))
        for start in range(0, len(addresses), 500):
            chunk = addresses[start : start + 500]
            for user in connection.execute(
                select(_users.c.id, _users.c.email, _users.c.phone).where(
                    or_(func.lower(_users.c.email).in_(chunk), _users.c.phone.in_(chunk))
                )
            ):
                for address in (user.email, user.phone):
                    if address:
                        owners.setdefault(normalize_address(address), user.id)
        existing: set[tuple[str, str]] = set()
        hashes = sorted(set(digests.values()))
        for start in range(0, len(hashes), 500):
            existing.update(
                (row.address_hash, row.channel)
                for row in connection.execute(
                    select(_suppressions.c.address_hash, _suppressions.c.channel).where(
                        _suppressions.c.address_hash.in_(hashes[start : start + 500])
                    )
                )
            )
        new = []
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (digests[row.address], row.channel)
            if key in existing or key in seen:
                continue
            seen.add(key)
            new.append(
                {
                    "user_id": owners.get(row.address),
                    "address_hash": digests[row.address],
                    "channel": row.channel,
                    "reason": row.reason,
                    "source": f"import:{path.name}"[:128],
                    "created_at": now,
                }
            )
        if new:
            connection.execute(_suppressions.insert(), new)
    return SuppressionImport(
        source=source,
        rows=len(rows),
        added=len(new),
        already=len(rows) - len(new),
        matched_users=sum(1 for row in new if row["user_id"] is not None),
    )


def _read(path: Path, source: str, channels: set[str], region: str | None) -> list[_Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read: {exc}") from None
    reader = csv.reader(text.splitlines())
    header = [name.strip().lower() for name in next(reader, [])]
    if "address" not in header:
        raise InputError(source, "needs an 'address' column (and optionally channel, reason)", 1)
    unknown = [name for name in header if name not in ("address", "channel", "reason")]
    if unknown:
        raise InputError(source, f"unknown column {unknown[0]!r}", 1)
    index = {name: header.index(name) for name in header}
    allowed = {"email", "sms", ALL_CHANNELS, *channels}
    rows: list[_Row] = []
    errors: list[InputError] = []
    total = 0
    for line, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue

        def cell(name: str, values: list[str] = values) -> str:
            at = index.get(name)
            return values[at].strip() if at is not None and at < len(values) else ""

        problem: tuple[str, str] | None = None
        address = cell("address")
        channel = cell("channel")
        if len(values) != len(header):
            problem = ("", f"expected {len(header)} fields, found {len(values)}")
        elif not address:
            problem = ("address", "required")
        elif "@" not in address and not looks_like_phone(address):
            problem = ("address", f"neither an email address nor a phone number: {address!r}")
        elif channel and channel not in allowed:
            known = ", ".join(sorted(allowed))
            problem = ("channel", f"unknown channel {channel!r} (known: {known})")
        elif len(channel) > _CHANNEL_CHARS:
            problem = ("channel", f"longer than {_CHANNEL_CHARS} characters")
        if problem is not None:
            total += 1
            if len(errors) < MAX_REPORTED:
                errors.append(InputError(source, problem[1], line, problem[0] or None))
            continue
        medium = "email" if "@" in address else "sms"
        rows.append(
            _Row(
                line=line,
                address=normalize_address(address, region),
                channel=channel or medium,
                reason=(cell("reason") or "imported")[:64],
            )
        )
    if total:
        raise InputErrors(source, errors, total)
    return rows
