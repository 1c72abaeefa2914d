"""SMTP over TLS verifies the server, against a real aiosmtpd server on 127.0.0.1.

Each server presents a certificate from a CA made for the test: unknown to the system,
so a client that verifies refuses it unless the channel's ``ca_file`` names that CA.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from campaign.common.errors import ConfigError, TransientDeliveryError
from campaign.config import load_config
from campaign.delivery.channels.base import SendResult
from campaign.delivery.channels.smtp import SmtpChannel
from tests.test_delivery_channels import clock, outgoing
from tests.tls_helpers import ServerCertificate, make_server_certificate


class _Mailbox:
    """Keeps accepted envelopes and the logins the server saw (with their TLS state)."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[bytes, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((auth_data.login, encrypted))
        return AuthResult(success=auth_data.password == b"app-password")


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd's start-up self-check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(
    certificate: ServerCertificate | None, *, implicit: bool
) -> Iterator[tuple[int, _Mailbox]]:
    """An SMTP server: implicit TLS (smtps), or STARTTLS required before AUTH and MAIL."""
    from aiosmtpd.controller import Controller

    mailbox = _Mailbox()
    port = _free_port()
    kwargs: dict[str, Any] = {"authenticator": mailbox.authenticate}
    if certificate is None:
        kwargs["auth_require_tls"] = False
    elif implicit:
        kwargs["ssl_context"] = certificate.server_context()
        kwargs["auth_require_tls"] = False  # the whole session is TLS already
    else:
        kwargs["tls_context"] = certificate.server_context()
        kwargs["require_starttls"] = True
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def _send(channel: SmtpChannel) -> Any:
    async def main() -> Any:
        try:
            return (await channel.send([outgoing(1)]))[0]
        finally:
            await channel.aclose()

    return asyncio.run(main())


def _channel(url: str, *, starttls: bool = False, ca_file: Path | None = None) -> SmtpChannel:
    return SmtpChannel(
        "smtp",
        url=url,
        from_address="shop@shop.test",
        username="shop",
        password="app-password",
        starttls=starttls,
        timeout_seconds=5,
        clock=clock,
        ca_file=ca_file,
    )


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return make_server_certificate(tmp_path / "tls")


@pytest.mark.parametrize("implicit", [True, False], ids=["smtps", "starttls"])
def test_a_server_whose_certificate_is_not_trusted_is_refused_before_the_login(
    certificate: ServerCertificate, implicit: bool
) -> None:
    with smtp_server(certificate, implicit=implicit) as (port, mailbox):
        scheme = "smtps" if implicit else "smtp"
        result = _send(_channel(f"{scheme}://127.0.0.1:{port}", starttls=not implicit))
    assert isinstance(result, TransientDeliveryError)
    assert "is not trusted" in str(result) and "ca_file" in str(result)
    assert mailbox.logins == [] and mailbox.envelopes == []


@pytest.mark.parametrize("implicit", [True, False], ids=["smtps", "starttls"])
def test_a_server_signed_by_the_configured_ca_file_is_accepted(
    certificate: ServerCertificate, implicit: bool
) -> None:
    with smtp_server(certificate, implicit=implicit) as (port, mailbox):
        scheme = "smtps" if implicit else "smtp"
        channel = _channel(
            f"{scheme}://127.0.0.1:{port}", starttls=not implicit, ca_file=certificate.ca_file
        )
        result = _send(channel)
    assert isinstance(result, SendResult)
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["u1@example.com"]]
    assert mailbox.logins == [(b"shop", True)]  # the password travelled inside TLS only


def test_the_certificate_must_name_the_host_connected_to(tmp_path: Path) -> None:
    other = make_server_certificate(tmp_path / "tls", host="mail.other.example")
    with smtp_server(other, implicit=True) as (port, mailbox):
        result = _send(_channel(f"smtps://127.0.0.1:{port}", ca_file=other.ca_file))
    assert isinstance(result, TransientDeliveryError) and "not trusted" in str(result)
    assert "mismatch" in str(result) or "match" in str(result)
    assert mailbox.envelopes == []


def test_starttls_against_a_server_without_it_never_falls_back_to_plain_text(
    certificate: ServerCertificate,
) -> None:
    with smtp_server(None, implicit=False) as (port, mailbox):
        channel = _channel(f"smtp://127.0.0.1:{port}", starttls=True, ca_file=certificate.ca_file)
        result = _send(channel)
    assert isinstance(result, TransientDeliveryError) and "STARTTLS" in str(result)
    assert mailbox.logins == [] and mailbox.envelopes == []


def test_the_tls_context_verifies_chain_and_host_name(certificate: ServerCertificate) -> None:
    context = _channel("smtps://127.0.0.1:465", ca_file=certificate.ca_file).tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_ca_file_that_is_not_pem_fails_when_the_channel_is_built(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ValueError, match="ca_file"):
        _channel("smtps://127.0.0.1:465", ca_file=bad)


def _config(tmp_path: Path, channel: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[channels.mail]\nkind = \"smtp\"\n{channel}\n", encoding="utf-8")
    return path


def test_the_config_checks_the_ca_file(tmp_path: Path, certificate: ServerCertificate) -> None:
    (tmp_path / "certs").mkdir()
    certificate.ca_file.rename(tmp_path / "certs" / "ca.pem")
    ok = _config(tmp_path, 'url = "smtps://mail.example:465"\nca_file = "certs/ca.pem"')
    channel = load_config(ok, environ={}).channels["mail"]
    assert channel.ca_file == "certs/ca.pem"
    missing = _config(tmp_path, 'url = "smtps://mail.example:465"\nca_file = "nope.pem"')
    with pytest.raises(ConfigError, match=r"channels\.mail\.ca_file: no such file"):
        load_config(missing, environ={})
    plain = _config(tmp_path, 'url = "smtp://mail.example:25"\nca_file = "certs/ca.pem"')
    with pytest.raises(ConfigError, match="needs TLS"):
        load_config(plain, environ={})
