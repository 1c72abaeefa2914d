"""What the agent is doing right now, for ``campaign status``: read-only SQL, no clock.

One :class:`StatusReport` of plain records, each section a list of dicts whose keys
are the documented field names of ``campaign status --format json|csv``
(docs/output.md): the outbox by channel and status, the queue's due times, the
latest delivery errors with their reasons, pauses (who, why, when) and their
history, the active model versions, the newest run of every campaign, and the live
senders. Error reasons are returned as stored; the caller masks addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from campaign.db.base import table_of
from campaign.db.models import CampaignRun, Message, ModelVersion, WorkerHeartbeat
from campaign.db.pauses import ALL, pause_history, switches

# Field names of each section, in display order (the JSON/CSV contract).
FIELDS: dict[str, tuple[str, ...]] = {
    "outbox": ("channel", "status", "messages"),
    "queue": ("channel", "queued", "due_now", "retrying", "next_due_at", "oldest_queued_at",
              "sending", "expired_leases"),
    "errors": ("channel", "status", "reason", "messages", "campaigns", "last_at"),
    "pauses": ("campaign", "state", "reason", "by", "at"),
    "pause_history": ("campaign", "action", "reason", "by", "at"),
    "models": ("kind", "version", "trained_at", "as_of", "horizon_days", "roc_auc", "split"),
    "runs": ("campaign", "run_id", "slot", "status", "queued", "held_out", "skipped",
             "ranked_by", "started_at", "finished_at", "error", "targeting"),
    "senders": ("owner", "kind", "started_at", "heartbeat_at", "alive"),
}

# Stored errors start with "<channel> message <id>: "; grouping drops that prefix.
_MESSAGE_PREFIX = re.compile(r"^\S+ message \d+: ")
ERROR_SAMPLE = 500


@dataclass
class StatusReport:
    """Every section of ``campaign status`` as lists of records (see :data:`FIELDS`)."""

    now: datetime
    outbox: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    pauses: list[dict[str, Any]]
    pause_history: list[dict[str, Any]]
    models: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    senders: list[dict[str, Any]]

    def sections(self) -> dict[str, list[dict[str, Any]]]:
        """Section name → records, in :data:`FIELDS` order."""
        return {name: getattr(self, name) for name in FIELDS}


def error_reason(stored: str) -> str:
    """A stored ``last_error`` without its per-message prefix, so equal causes group."""
    return _MESSAGE_PREFIX.sub("", stored.strip(), count=1)


def _outbox(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(Message.channel, Message.status, func.count().label("n"))
        .group_by(Message.channel, Message.status)
        .order_by(Message.channel, Message.status)
    )
    return [{"channel": r.channel, "status": r.status, "messages": int(r.n)} for r in rows]


def _queue(connection: Connection, now: datetime) -> list[dict[str, Any]]:
    queued = Message.status == "queued"
    due = and_(queued, (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
    sending = Message.status == "sending"
    rows = connection.execute(
        select(
            Message.channel,
            func.sum(case((queued, 1), else_=0)).label("queued"),
            func.sum(case((due, 1), else_=0)).label("due_now"),
            func.sum(case((and_(queued, Message.attempts > 0), 1), else_=0)).label("retrying"),
            func.min(case((queued, Message.next_attempt_at))).label("next_due_at"),
            func.min(case((queued, Message.created_at))).label("oldest_queued_at"),
            func.sum(case((sending, 1), else_=0)).label("sending"),
            func.sum(
                case((and_(sending, Message.lease_until < now), 1), else_=0)
            ).label("expired_leases"),
        )
        .where(Message.status.in_(("queued", "sending")))
        .group_by(Message.channel)
        .order_by(Message.channel)
    )
    out = []
    for r in rows:
        next_due = _aware(r.next_due_at)
        if int(r.due_now or 0) > 0:
            next_due = now  # something is due already: the sender takes it next
        out.append({
            "channel": r.channel, "queued": int(r.queued or 0), "due_now": int(r.due_now or 0),
            "retrying": int(r.retrying or 0), "next_due_at": next_due,
            "oldest_queued_at": _aware(r.oldest_queued_at), "sending": int(r.sending or 0),
            "expired_leases": int(r.expired_leases or 0),
        })
    return out


def _aware(value: Any) -> Any:
    # MIN() over a CASE loses the column's UTC type on SQLite: parse its text back.
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _errors(connection: Connection, limit: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(Message.channel, Message.status, Message.campaign, Message.last_error,
               Message.updated_at)
        .where(Message.last_error.is_not(None), Message.status.in_(("queued", "dead",
                                                                   "sending", "skipped")))
        .order_by(Message.updated_at.desc(), Message.id.desc())
        .limit(ERROR_SAMPLE)
    )
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r.channel, r.status, error_reason(r.last_error))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "channel": r.channel, "status": r.status, "reason": key[2], "messages": 0,
                "campaigns": [], "last_at": r.updated_at,
            }
        group["messages"] += 1
        if r.campaign not in group["campaigns"]:
            group["campaigns"].append(r.campaign)
    out = list(groups.values())[:limit]
    for group in out:
        group["campaigns"] = ", ".join(sorted(group["campaigns"]))
    return out


def _pauses(connection: Connection, configured: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for switch in switches(connection):
        if switch.paused:
            out.append({
                "campaign": switch.campaign, "state": "paused (all)" if switch.campaign == ALL
                else "paused", "reason": switch.reason, "by": switch.by, "at": switch.at,
            })
    out.extend(
        {"campaign": name, "state": "paused in config.toml", "reason": None, "by": None,
         "at": None}
        for name in configured
    )
    return out


def _models(connection: Connection) -> list[dict[str, Any]]:
    from campaign.measurement.reports.data import model_split

    rows = connection.execute(
        select(ModelVersion.kind, ModelVersion.id, ModelVersion.trained_at, ModelVersion.as_of,
               ModelVersion.horizon_days, ModelVersion.metrics)
        .where(ModelVersion.active.is_(True))
        .order_by(ModelVersion.kind, ModelVersion.id)
    )
    out = []
    for r in rows:
        holdout = (r.metrics or {}).get("holdout") or {}
        out.append({
            "kind": r.kind, "version": int(r.id), "trained_at": r.trained_at, "as_of": r.as_of,
            "horizon_days": r.horizon_days, "roc_auc": holdout.get("roc_auc"),
            "split": model_split(r.metrics or {}, r.as_of, r.horizon_days) or None,
        })
    return out


def _runs(connection: Connection) -> list[dict[str, Any]]:
    newest = (
        select(CampaignRun.campaign, func.max(CampaignRun.id).label("id"))
        .group_by(CampaignRun.campaign)
        .subquery()
    )
    runs = table_of(CampaignRun)
    rows = connection.execute(
        select(runs).join(newest, runs.c.id == newest.c.id).order_by(runs.c.campaign)
    )
    out = []
    for run in rows:
        counts = run.counts or {}
        out.append({
            "campaign": run.campaign, "run_id": int(run.id), "slot": run.slot,
            "status": run.status, "queued": counts.get("queued"),
            "held_out": counts.get("held_out"), "skipped": counts.get("skipped"),
            "ranked_by": run.ranked_by,
            "started_at": run.started_at, "finished_at": run.finished_at, "error": run.error,
            "targeting": run.targeting_note,
        })
    return out


def _senders(connection: Connection, now: datetime, live_seconds: float) -> list[dict[str, Any]]:
    beats = table_of(WorkerHeartbeat)
    rows = connection.execute(select(beats).order_by(beats.c.started_at))
    cutoff = now - timedelta(seconds=live_seconds)
    return [
        {"owner": b.owner, "kind": b.kind, "started_at": b.started_at,
         "heartbeat_at": b.heartbeat_at, "alive": b.heartbeat_at >= cutoff}
        for b in rows
    ]


def status_report(
    connection: Connection,
    *,
    now: datetime,
    paused_in_config: Iterable[str] = (),
    live_seconds: float = 30.0,
    errors: int = 10,
    history: int = 10,
) -> StatusReport:
    """Everything ``campaign status`` shows, as of ``now`` (aware UTC); read-only.

    ``paused_in_config`` names the campaigns whose ``paused`` flag is set in the file;
    a sender whose heartbeat is older than ``live_seconds`` is not alive; ``errors``
    and ``history`` bound the error groups and pause events listed.
    """
    return StatusReport(
        now=now,
        outbox=_outbox(connection),
        queue=_queue(connection, now),
        errors=_errors(connection, errors),
        pauses=_pauses(connection, paused_in_config),
        pause_history=[
            {"campaign": s.campaign, "action": "pause" if s.paused else "resume",
             "reason": s.reason, "by": s.by, "at": s.at}
            for s in pause_history(connection, history)
        ],
        models=_models(connection),
        runs=_runs(connection),
        senders=_senders(connection, now, live_seconds),
    )
