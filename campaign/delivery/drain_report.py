"""What one drain did, counted and logged per outcome as the sender records it."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from campaign.delivery.outbox import ClaimedMessage
from campaign.delivery.outcomes import Dead, Record, Sent, Skipped

log = logging.getLogger("campaign.delivery")

# Stored errors start with "<channel> message <id>: "; summaries drop that prefix.
_MESSAGE_PREFIX = re.compile(r"^\S+ message \d+: ")


def reason_of(error: str) -> str:
    """An error without its per-message prefix, so that equal causes group."""
    return _MESSAGE_PREFIX.sub("", error.strip(), count=1)


@dataclass
class DrainReport:
    """What one drain did. ``skipped`` counts by reason; ``requests`` are provider calls.

    ``reasons`` counts the failures by (outcome, channel, reason): ``retry`` and
    ``dead`` with the provider's or the transport's reason (per-message prefixes
    dropped, so equal causes add up), ``skipped`` with its detail when it has one.
    """

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    deferred: int = 0
    dead: int = 0
    released: int = 0
    requests: int = 0
    # Rows this drain lost to another sender before sending them (lease not renewed).
    lost: int = 0
    # "sent" outcomes recorded after the lease was lost; ``duplicates``: another
    # sender had already sent the same message (docs/delivery.md, "never twice").
    stale: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0

    @property
    def finished(self) -> int:
        """Messages that reached a final status in this drain."""
        return self.sent + self.dead + sum(self.skipped.values())

    def count(self, record: Record, message: ClaimedMessage, *, released: bool) -> None:
        """Count and log one outcome. ``released``: work handed back unsent (a
        ``Retry`` due now); any other ``Retry`` without a request is a quiet-hours
        deferral."""
        channel = message.channel
        if isinstance(record, Sent):
            self.sent += 1
            log_outcome(logging.INFO, "sent", message, provider_id=record.provider_message_id)
        elif isinstance(record, Dead):
            self.dead += 1
            self.reasons["dead", channel, reason_of(record.error)] += 1
            log_outcome(logging.WARNING, "dead", message, error=reason_of(record.error))
        elif isinstance(record, Skipped):
            self.skipped[record.reason] += 1
            if record.error:
                detail = f"{record.reason}: {reason_of(record.error)}"
                self.reasons["skipped", channel, detail] += 1
            log_outcome(logging.INFO, "skipped", message, reason=record.reason,
                        error=reason_of(record.error) if record.error else None)
        elif released:
            self.released += 1
            log_outcome(logging.DEBUG, "released", message)
        elif not record.attempted:
            self.deferred += 1
            log_outcome(logging.INFO, "deferred", message, until=record.at.isoformat(),
                        reason="quiet hours")
        else:
            self.retried += 1
            error = reason_of(record.error or "unknown error")
            self.reasons["retry", channel, error] += 1
            log_outcome(logging.WARNING, "retry", message, at=record.at.isoformat(), error=error)


def log_outcome(level: int, outcome: str, message: ClaimedMessage, **fields: Any) -> None:
    """``delivery.message.<outcome>`` with ids, campaign, channel and attempt: never an
    address or a message text (reasons from providers pass the log's redaction)."""
    if not log.isEnabledFor(level):
        return
    # The attempt this outcome belongs to: ``attempts`` counts the requests recorded
    # before this claim, so this one is the next.
    values = {
        "id": message.id, "campaign": message.campaign, "channel": message.channel,
        "attempt": message.attempts + 1, **{k: v for k, v in fields.items() if v is not None},
    }
    text = " ".join([f"delivery.message.{outcome}", *(f"{k}={v}" for k, v in values.items())])
    log.log(level, "%s", text, extra={"fields": values})
