"""SMTP through the standard library's ``smtplib``, one kept-open connection per lane.

``smtplib`` blocks, so each send runs in a worker thread; a lane's connection is reused
for its next message and reopened after any failure.

TLS (``smtps://`` and ``starttls``) always verifies the server: its certificate must
chain to the system's trust store, or to the channel's ``ca_file`` when one is
configured, and name the host of the URL. Without that the login and every message
could be read by whoever sits between us and the server.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from campaign.common.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from campaign.delivery.channels.base import OutgoingMessage, SendResult, SingleChannel

# Long unsubscribe URLs stay on one header line (RFC 5322 allows 998 characters).
_POLICY = email_policy.default.clone(max_line_length=998)


class SmtpChannel(SingleChannel):
    """Sends through ``smtp://[user@]host:port`` (``smtps://`` for implicit TLS).

    ``starttls`` upgrades a plain connection (a server that does not offer it is an
    error, never a silent fallback to plain text). ``ca_file`` is a PEM bundle trusted
    instead of the system's certificates (a private CA or a self-signed server). The
    generated ``Message-ID`` is the provider message id. Replies 5xx are permanent, 4xx
    and broken connections transient.
    """

    def __init__(
        self,
        name: str,
        *,
        url: str,
        from_address: str | None,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout_seconds: float,
        clock: Callable[[], datetime],
        ca_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"channel {name!r}: SMTP url must look like smtp://host:port")
        self.name = name
        self.medium = "email"
        self._ssl = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._ssl else 25)
        self._username = username or (unquote(parts.username) if parts.username else None)
        self._password = password
        self._starttls = starttls
        self._from = from_address or "no-reply@localhost"
        self._timeout = timeout_seconds
        self._clock = clock
        self._ca_file = ca_file
        self._tls: ssl.SSLContext | None = None
        if self._ssl or starttls:
            try:
                self.tls_context()  # a broken ca_file fails when the channel is built
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"channel {name!r}: ca_file {ca_file}: {exc}") from None
        self._connections: dict[int, smtplib.SMTP] = {}
        self._locks: dict[int, threading.Lock] = {}

    def tls_context(self) -> ssl.SSLContext:
        """The verifying TLS context (made once): certificate chain and host name checked.

        Raises:
            OSError: ``ca_file`` cannot be read or holds no certificate.
        """
        if self._tls is None:
            cafile = str(self._ca_file) if self._ca_file is not None else None
            self._tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        return self._tls

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self._ssl:
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self.tls_context()
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if self._starttls and not self._ssl:
                smtp.starttls(context=self.tls_context())
            if self._username:
                smtp.login(self._username, self._password or "")
        except BaseException:
            smtp.close()  # not kept by the lane yet: close it here
            raise
        return smtp

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message: text with an HTML alternative, unsubscribe and key headers."""
        email = EmailMessage(policy=_POLICY)
        email["From"] = self._from
        email["To"] = message.to
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(self._clock())
        email["Message-ID"] = make_msgid(idstring=str(message.message_id))
        for key, value in message.email_headers().items():
            email[key] = value
        email.set_content(message.text or "")
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def _send_blocking(self, email: EmailMessage, lane: int, message_id: int) -> None:
        lock = self._locks.setdefault(lane, threading.Lock())
        with lock:
            smtp = self._connections.get(lane)
            try:
                if smtp is None:
                    smtp = self._connect()
                    self._connections[lane] = smtp
                smtp.send_message(email)
            except smtplib.SMTPResponseException as exc:
                self._drop(lane)
                raise _from_reply(self.name, message_id, exc.smtp_code, exc.smtp_error) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                self._drop(lane)
                code, reply = next(iter(exc.recipients.values()))
                raise _from_reply(self.name, message_id, code, reply) from exc
            except ssl.SSLCertVerificationError as exc:
                self._drop(lane)
                raise TransientDeliveryError(
                    self.name,
                    f"SMTP server {self._host}:{self._port} is not trusted:"
                    f" {exc.verify_message or exc} (its certificate must chain to the"
                    " system's CAs or to the channel's ca_file)",
                    message_id,
                ) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._drop(lane)
                # Lost mid-conversation: the server may have queued the mail already
                # (only a refused connection is known not to have).
                raise TransientDeliveryError(
                    self.name, f"SMTP connection error: {exc}", message_id,
                    maybe_delivered=not isinstance(exc, ConnectionRefusedError),
                ) from exc

    def _drop(self, lane: int) -> None:
        smtp = self._connections.pop(lane, None)
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    async def send_one(self, message: OutgoingMessage, lane: int) -> SendResult:
        """Send one email; accepted means the server answered 250 to DATA."""
        email = self.build(message)
        await asyncio.to_thread(self._send_blocking, email, lane, message.message_id)
        return SendResult(message.message_id, str(email["Message-ID"]))

    async def aclose(self) -> None:
        """QUIT every open connection."""

        def close_all() -> None:
            for lane in list(self._connections):
                smtp = self._connections.pop(lane)
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()

        await asyncio.to_thread(close_all)


def _from_reply(channel: str, message_id: int, code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    reason = f"SMTP {code} {text}".strip()
    if 400 <= code < 500:
        return TransientDeliveryError(channel, reason, message_id)
    return PermanentDeliveryError(channel, reason, message_id)
