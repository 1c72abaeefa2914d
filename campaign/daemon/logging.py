"""Structured logs for the daemon: one dotted event name per kind, never a full address.

Every record the daemon writes starts with its event name (``campaign.run.started``,
``delivery.message.dead``, ...) followed by ``key=value`` fields; the JSON format puts
the name in ``event`` and the fields in their own keys. Events emitted here:

=========================  ===================================================
campaign.run.started       a scheduled slot is being planned
campaign.run.finished      planned (fields: outcome, queued, run_id, seconds)
campaign.run.failed        planning raised; recorded in campaign_runs
campaign.run.missed        a slot older than the grace time; recorded as missed
campaign.run.paused        a slot fell while the campaign was paused
daemon.started / .stopping / .stopped          process lifecycle
daemon.leader.acquired / .lost / .refused      scheduler election
delivery.sender.started / .stopped             the sender loop
delivery.message.<outcome>  per message: sent, retry, deferred, skipped, dead
                           (released: DEBUG); ids, campaign, channel, attempt
ingest.file.imported / .rejected / .failed     CSV drops
ingest.query.imported / .failed                shop-database queries
model.retrain.finished / .failed               the retraining schedule
recommender.retrain.finished / .failed         the recommender tournament after it
=========================  ===================================================

:func:`redact` masks e-mail addresses and phone numbers in any text, and
:class:`RedactingFilter` applies it to every part of every record, whoever logged it:
the message, the structured ``fields`` (keys and values, nested ones included), the
exception text (causes and notes included) and the stack. Both formatters redact
what they write once more, so a handler set up without the filter leaks nothing either.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A phone number: optional +, then 7-15 digits possibly split by spaces, dots, dashes
# or parentheses. Keeps the last two digits so operators can tell numbers apart.
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d(?:[\s().-]*\d){6,14}(?![\w])")
_EVENT = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)\b")


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    # Ids, counts and timestamps are digit runs too. Mask what looks like a phone:
    # a leading +, separated groups with 9+ digits (not an ISO date), or 11+ digits.
    separated = any(not c.isdigit() for c in text)
    if not text.startswith("+"):
        if separated and (len(digits) < 9 or re.match(r"\d{4}-\d{2}-\d{2}", text)):
            return text
        if not separated and len(digits) < 11:
            return text
    return ("+" if text.startswith("+") else "") + "*" * (len(digits) - 2) + "".join(digits[-2:])


def redact(text: str) -> str:
    """``text`` with e-mail addresses as ``j***@example.com`` and phones as ``+*********34``.

    Pure. Domains stay (they help diagnose a provider); local parts and all but the
    last two digits of phone numbers never reach a log.
    """
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone, text)


_SCALARS = (bool, int, float, type(None))
# Nesting deeper than this is logged as its (redacted) text.
_MAX_DEPTH = 8


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every address masked: strings, dict keys and values, list items.

    Pure. Numbers stay numbers unless their digits look like a phone number (then they
    become the masked text); any other object is logged as its redacted ``str``.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _SCALARS):
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
            masked = redact(text)
            return value if masked == text else masked
        return value
    if depth < _MAX_DEPTH and isinstance(value, dict):
        return {redact(str(k)): redact_value(v, depth + 1) for k, v in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, depth + 1) for item in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Masks addresses in every part of a record: message, fields, exception and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if fields is not None:
            # A new object: the caller's dict is not touched.
            record.fields = redact_value(fields)
        return True


class TextFormatter(logging.Formatter):
    """``asctime level logger: message`` (plus exception and stack), redacted as written."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, message, fields, exc (redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        match = _EVENT.match(message)
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": match.group(1) if match else None,
            "message": message,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            clean = redact_value(fields)
            payload.update({k: v for k, v in clean.items() if k not in payload})
        if record.exc_info or record.exc_text:
            exc = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
            payload["exc"] = redact(exc)
        if record.stack_info:
            payload["stack"] = redact(record.stack_info)
        return json.dumps(payload, default=lambda v: redact(str(v)), ensure_ascii=False)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``key=value`` fields (also kept as structured fields for JSON)."""
    text = " ".join([event, *(f"{k}={v}" for k, v in fields.items())])
    logger.log(level, "%s", text, extra={"fields": fields})


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Route the root logger to stderr in ``fmt`` (``text`` or ``json``), redacted.

    Entry points only (``campaign daemon``/``worker``); replaces earlier handlers.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO with the URL; keep it for debugging only.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
