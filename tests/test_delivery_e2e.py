"""End to end: a planned demo shop delivered by the real ``campaign send --once`` process
through every channel kind (webhook, twilio, sendgrid, smtp, file) to real local servers.

The shop is the demo generator's (300 users) imported, trained and scored by the demo's
own steps; four campaigns with disjoint risk bands are planned through the real
``campaign run`` command, each naming channels of different kinds. Then a separate
``campaign send --once`` process drains the outbox, and every queued message must have
arrived exactly once, at the right server, with the right headers, and be ``sent``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common import signing
from campaign.config import load_config
from campaign.db.engine import make_engine
from campaign.db.models import ChurnScore, Message, User
from campaign.delivery.channels.sendgrid import parse_payload
from campaign.demo.run import DEMO_STEPS
from campaign.demo.steps import DemoContext, DemoSettings
from tests.http_sink import HttpSink

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "E2E_HOOK_SECRET": "whsec-e2e-hook",
    "E2E_SENDGRID_KEY": "SG.e2e-key",
    "E2E_TWILIO_SID": "AC0e2e",
    "E2E_TWILIO_TOKEN": "twilio-e2e-token",
}
ONE_CLICK = "List-Unsubscribe=One-Click"


class _Mailbox:
    """aiosmtpd handler keeping every accepted envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd's start-up self-check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_text(
    db_url: str, hook: str, twilio: str, grid: str, smtp_port: int,
    cuts: tuple[float, float, float] = (0.15, 0.3, 0.5),
) -> str:
    low, middle, high = cuts
    campaigns = [
        # (name, risk band, channels in priority order, template, offer)
        ("winback", high, 1.0, ["grid", "text"], "winback", True),
        ("care", middle, high, ["mail", "text"], "care", False),
        ("nudge", low, middle, ["hook"], "care", False),
        ("hello", 0.0, low, ["disk"], "care", False),
    ]
    blocks = []
    for name, low, high, channels, template, offer in campaigns:
        blocks.append(
            f"""
[[campaigns]]
name = "{name}"
channels = {json.dumps(channels)}
holdout_share = 0.0

[campaigns.audience]
min_risk = {low}
max_risk = {high}

[[campaigns.variants]]
name = "{name}-a"
template = "{template}"
offer = {str(offer).lower()}
"""
        )
    return f"""
[shop]
name = "E2E Shop"
currency = "CNY"
postal_address = "1 Example Road, Example City"
base_url = "https://shop.test"
timezone = "Asia/Shanghai"
default_locale = "zh-CN"

[database]
url = "{db_url}"

[model]
horizon_days = 90
lookback_days = 365
min_customers = 100
min_history_days = 180

[delivery]
timeout_seconds = 5.0
concurrency = 8
http_clients = 2
http_connections_per_client = 4
unsubscribe_mailto = "mailto:unsubscribe@shop.test"

[delivery.quiet_hours]
start = 00:00:00
end = 00:00:00

[delivery.quiet_hours_by_medium]

[channels.hook]
kind = "webhook"
medium = "email"
url = "{hook}/hook"
secret_env = "E2E_HOOK_SECRET"
rate_per_second = 1000.0

[channels.grid]
kind = "sendgrid"
url = "{grid}/v3/mail/send"
secret_env = "E2E_SENDGRID_KEY"
from_address = "shop@shop.test"
batch_size = 25
rate_per_second = 1000.0

[channels.mail]
kind = "smtp"
url = "smtp://127.0.0.1:{smtp_port}"
from_address = "shop@shop.test"
rate_per_second = 1000.0

[channels.text]
kind = "twilio"
medium = "sms"
url = "{twilio}/2010-04-01/Accounts/AC0e2e/Messages.json"
from_address = "+15550000000"
username_env = "E2E_TWILIO_SID"
secret_env = "E2E_TWILIO_TOKEN"
rate_per_second = 1000.0

[channels.disk]
kind = "file"
medium = "email"
path = "outbox"
rate_per_second = 1000.0
""" + "".join(blocks)


def _send_once(config_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(SECRETS)
    return subprocess.run(
        [sys.executable, "-m", "campaign", "--config", str(config_path), "send", "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def _once_each(keys: list[str | None], expected: set[str], where: str) -> None:
    counts = Counter(keys)
    assert set(counts) == expected, f"{where}: wrong idempotency keys"
    assert all(n == 1 for n in counts.values()), f"{where}: repeats {counts.most_common(3)}"


def _check_unsubscribe(headers: Any, body_html: str | None, where: str) -> None:
    value = headers["List-Unsubscribe"]
    https, mailto = [part.strip().strip("<>") for part in value.split(",")]
    assert https.startswith("https://shop.test/unsubscribe?"), where
    assert mailto == "mailto:unsubscribe@shop.test", where
    assert headers["List-Unsubscribe-Post"] == ONE_CLICK, where
    if body_html is not None:
        # The header's link is the very link the planner rendered into the body.
        assert https in html.unescape(body_html), where


@pytest.mark.slow
def test_campaign_send_delivers_a_planned_demo_through_every_channel_kind(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiosmtpd.controller import Controller

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    mailbox = _Mailbox()
    smtp_port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    with HttpSink() as hook, HttpSink() as twilio, HttpSink() as grid:
        try:
            config_path = tmp_path / "config.toml"
            config_path.write_text(
                _config_text(db_url, hook.url, twilio.url, grid.url, smtp_port),
                encoding="utf-8",
            )
            config = load_config(config_path, environ=dict(os.environ))
            engine = make_engine(config.database_url())
            context = DemoContext(
                folder=tmp_path, config=config, engine=engine,
                settings=DemoSettings(users=300, seed=7),
            )
            wanted = ("migrate", "generate", "import", "train")
            for step in [s for s in DEMO_STEPS if s.name in wanted]:
                step.run(context)
            # Risk bands at the scores' quartiles, so every campaign (and with it every
            # channel kind) has an audience whatever tree the training chose.
            with engine.connect() as connection:
                risks = sorted(connection.execute(select(ChurnScore.risk)).scalars())
            low, middle, high = (round(risks[len(risks) * q // 4], 6) for q in (1, 2, 3))
            config_path.write_text(
                _config_text(db_url, hook.url, twilio.url, grid.url, smtp_port,
                             (low, middle, high)),
                encoding="utf-8",
            )

            runner = CliRunner()
            for campaign in ("winback", "care", "nudge", "hello"):
                result = runner.invoke(
                    app, ["--config", str(config_path), "run", campaign, "--as-of", "2026-11-01"]
                )
                assert result.exit_code == 0, result.output

            with engine.connect() as connection:
                planned = connection.execute(
                    select(Message.id, Message.channel, Message.idempotency_key,
                           Message.status, Message.body, User.email, User.phone)
                    .join(User, User.id == Message.user_id)
                ).all()
            queued = [row for row in planned if row.status == "queued"]
            by_channel: dict[str, dict[str, Any]] = {}
            for row in queued:
                by_channel.setdefault(row.channel, {})[row.idempotency_key] = row
            assert set(by_channel) == {"hook", "grid", "mail", "text", "disk"}, (
                Counter(row.channel for row in queued)
            )

            started = time.time()
            result = _send_once(config_path)
            assert result.returncode == 0, result.stdout + result.stderr
            finished = time.time()

            # Webhook: signed Standard Webhooks request, JSON body, email headers inside.
            keys = set(by_channel["hook"])
            _once_each([r.key for r in hook.requests], keys, "webhook")
            for request in hook.requests:
                assert request.path == "/hook"
                msg_id = signing.verify(
                    [SECRETS["E2E_HOOK_SECRET"]], request.headers, request.body,
                    now=int(started + (finished - started) / 2),
                )
                body = request.json()
                row = by_channel["hook"][msg_id]
                assert body["id"] == request.key == msg_id
                assert body["to"] == row.email and body["message_id"] == row.id
                _check_unsubscribe(body["headers"], body["html"], "webhook")

            # Twilio: form POST with basic auth and the status callback.
            keys = set(by_channel["text"])
            _once_each([r.key for r in twilio.requests], keys, "twilio")
            basic = base64.b64encode(
                f"{SECRETS['E2E_TWILIO_SID']}:{SECRETS['E2E_TWILIO_TOKEN']}".encode()
            ).decode()
            for request in twilio.requests:
                assert request.path == "/2010-04-01/Accounts/AC0e2e/Messages.json"
                assert request.headers["authorization"] == f"Basic {basic}"
                form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
                row = by_channel["text"][request.key]
                assert form["To"] == row.phone and form["From"] == "+15550000000"
                assert form["Body"].strip()
                assert form["StatusCallback"] == "https://shop.test/webhooks/text"

            # SendGrid: batched personalizations, bearer key, per-message key and headers.
            keys = set(by_channel["grid"])
            personalizations = []
            for request in grid.requests:
                assert request.path == "/v3/mail/send"
                assert request.headers["authorization"] == f"Bearer {SECRETS['E2E_SENDGRID_KEY']}"
                assert request.key
                personalizations += parse_payload(request.json())
            assert len(grid.requests) < len(keys), "the batch channel sent one per request"
            _once_each([p["custom_args"]["idempotency_key"] for p in personalizations], keys,
                       "sendgrid")
            for p in personalizations:
                row = by_channel["grid"][p["custom_args"]["idempotency_key"]]
                assert p["to"] == row.email
                assert p["headers"]["Idempotency-Key"] == row.idempotency_key
                _check_unsubscribe(p["headers"], p["html"], "sendgrid")

            # SMTP: one mail per message with the key and RFC 8058 headers.
            keys = set(by_channel["mail"])
            mails = [
                (e, message_from_bytes(e.content, policy=email_policy.default))
                for e in mailbox.envelopes
            ]
            _once_each([m["Idempotency-Key"] for _, m in mails], keys, "smtp")
            for envelope, mail in mails:
                row = by_channel["mail"][mail["Idempotency-Key"]]
                assert envelope.rcpt_tos == [row.email]
                assert mail["From"] == "shop@shop.test"
                html_part = mail.get_body(("html",))
                _check_unsubscribe(
                    mail, html_part.get_content() if html_part else None, "smtp"
                )

            # File: one fsynced JSON line per message.
            lines = (tmp_path / "outbox" / "disk.jsonl").read_text(encoding="utf-8").splitlines()
            records = [json.loads(line) for line in lines]
            _once_each([r["idempotency_key"] for r in records], set(by_channel["disk"]), "file")
            for record in records:
                assert record["to"] == by_channel["disk"][record["idempotency_key"]].email
                _check_unsubscribe(record["headers"], record["html"], "file")

            with engine.connect() as connection:
                after = dict(connection.execute(select(Message.id, Message.status)).all())
            assert {after[row.id] for row in queued} == {"sent"}
            assert all(after[row.id] == row.status for row in planned if row.status != "queued")

            # A second drain (in-process this time) finds nothing due: nothing is repeated.
            result = runner.invoke(app, ["--config", str(config_path), "send", "--once"])
            assert result.exit_code == 0, result.output
            assert len(hook.requests) == len(by_channel["hook"])
            assert len(twilio.requests) == len(by_channel["text"])
            assert len(mailbox.envelopes) == len(by_channel["mail"])
            assert len((tmp_path / "outbox" / "disk.jsonl").read_text().splitlines()) == len(
                by_channel["disk"]
            )
            assert sum(len(parse_payload(r.json())) for r in grid.requests) == len(
                by_channel["grid"]
            )
            engine.dispose()
        finally:
            controller.stop()
