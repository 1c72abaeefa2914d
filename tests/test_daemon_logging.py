"""No address or phone number reaches a log line, in any part of a record, in either format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from campaign.daemon.logging import configure_logging, log_event, redact_value

EMAIL = "jane.doe+vip@example.com"
PHONE = "+8613800138000"
PHONE_LOCAL = "(555) 123-4567 890"
PLANTED = (EMAIL, PHONE, PHONE_LOCAL, "jane.doe", "13800138000", "5551234567890")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _planted_everywhere(log: logging.Logger) -> None:
    """One record per part a record has, each carrying both an address and a phone."""
    email, phone = EMAIL, PHONE
    log_event(
        log,
        "delivery.message.dead",
        logging.WARNING,
        to=email,
        phone=phone,
        number=int(phone[1:]),
        nested={"recipient": {"email": email, "phones": [phone, PHONE_LOCAL]}},
        items=(email, phone),
        **{f"key_{email}": "the key itself", f"key_{phone}": 1},
    )
    log.info("sending to %s and %s", email, phone)
    log.info("plain " + email + " " + phone)
    try:
        try:
            raise ValueError(f"provider refused {email}")
        except ValueError as inner:
            error = RuntimeError(f"SMS to {phone} failed")
            error.add_note(f"recipient {email} / {PHONE_LOCAL}")
            raise error from inner
    except RuntimeError:
        log.error("delivery.sender.crashed", exc_info=True)
        log_event(log, "delivery.message.failed", logging.ERROR, reason="see exc")
        log.exception("with args %s", phone)
    log.warning("stacked", stack_info=True, extra={"fields": {"who": [email, phone]}})


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_log_line_holds_an_address_or_a_phone_number(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(fmt, "DEBUG")
    _planted_everywhere(logging.getLogger("campaign.test"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= (7 if fmt == "json" else 20)  # text: tracebacks span lines
    for line in lines:
        for planted in PLANTED:
            assert planted not in line, line
    joined = "\n".join(lines)
    # Redacted, not dropped: what is left still helps an operator.
    assert "j***@example.com" in joined and "***********00" in joined
    assert "RuntimeError" in joined and "ValueError" in joined and "stacked" in joined
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        dead = next(r for r in records if r["event"] == "delivery.message.dead")
        assert dead["to"] == "j***@example.com"
        assert dead["nested"]["recipient"]["phones"][0] == "+***********00"
        assert any("exc" in r and "SMS to" in r["exc"] for r in records)
        assert any("stack" in r for r in records)


def test_redacted_values_keep_their_shape() -> None:
    value = {"count": 42, "ok": True, "ratio": 0.5, "none": None, "ids": [1, 2]}
    assert redact_value(value) == value
    assert redact_value({"to": [EMAIL]}) == {"to": ["j***@example.com"]}
