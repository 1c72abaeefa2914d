"""Provider adapters, one module each, and :func:`build_channels` that wires them from config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from campaign.config import ChannelConfig
from campaign.delivery.channels.base import (
    Channel,
    HttpLanes,
    Outcome,
    OutgoingMessage,
    SendResult,
)
from campaign.delivery.channels.file import FileChannel
from campaign.delivery.channels.sendgrid import SendGridChannel
from campaign.delivery.channels.smtp import SmtpChannel
from campaign.delivery.channels.twilio import TwilioChannel
from campaign.delivery.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "HttpLanes",
    "OutgoingMessage",
    "Outcome",
    "SendResult",
    "build_channel",
    "build_channels",
]


def build_channel(
    name: str,
    config: ChannelConfig,
    *,
    lanes: HttpLanes,
    clock: Callable[[], datetime],
    timeout_seconds: float,
    resolve_path: Callable[[str], object],
    status_callback_base: str,
) -> Channel:
    """One configured channel (``config.kind`` picks the adapter).

    ``resolve_path`` anchors relative paths (a file channel's folder, an SMTP
    ``ca_file``) at the config's folder (``Config.resolve_path``);
    ``status_callback_base`` is the public base URL SMS status callbacks default to.
    """
    secret = config.secret.get_secret_value() if config.secret is not None else None
    if config.kind == "file":
        folder = Path(str(resolve_path(config.path or ".")))
        return FileChannel(name, medium=config.medium, path=folder)
    if config.kind == "webhook":
        assert config.url is not None
        return WebhookChannel(
            name, medium=config.medium, url=config.url, secret=secret, lanes=lanes, clock=clock
        )
    if config.kind == "twilio":
        assert config.url is not None
        callback = config.status_callback_url or (
            f"{status_callback_base.rstrip('/')}/webhooks/{name}"
        )
        return TwilioChannel(
            name,
            url=config.url,
            from_number=config.from_address,
            username=config.username,
            password=secret,
            status_callback_url=callback,
            lanes=lanes,
            clock=clock,
        )
    if config.kind == "sendgrid":
        assert config.url is not None
        return SendGridChannel(
            name,
            url=config.url,
            api_key=secret,
            from_address=config.from_address,
            batch_size=config.batch_size,
            lanes=lanes,
            clock=clock,
        )
    assert config.url is not None
    return SmtpChannel(
        name,
        url=config.url,
        from_address=config.from_address,
        username=config.username,
        password=secret,
        starttls=config.starttls,
        timeout_seconds=timeout_seconds,
        clock=clock,
        ca_file=Path(str(resolve_path(config.ca_file))) if config.ca_file else None,
    )


def build_channels(
    configs: Mapping[str, ChannelConfig],
    *,
    lanes: HttpLanes,
    clock: Callable[[], datetime],
    timeout_seconds: float,
    resolve_path: Callable[[str], object],
    status_callback_base: str,
) -> dict[str, Channel]:
    """Every configured channel by name."""
    return {
        name: build_channel(
            name,
            config,
            lanes=lanes,
            clock=clock,
            timeout_seconds=timeout_seconds,
            resolve_path=resolve_path,
            status_callback_base=status_callback_base,
        )
        for name, config in configs.items()
    }
