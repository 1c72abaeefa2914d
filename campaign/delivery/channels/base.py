"""What every channel shares: the message it sends, the result, the protocol, HTTP lanes.

A channel turns :class:`OutgoingMessage` objects into :class:`SendResult` objects or
:class:`~campaign.common.errors.DeliveryError` exceptions and never touches the database.
HTTP errors are translated here, once: a timeout, a connection failure, a 5xx or a 429
becomes :class:`TransientDeliveryError` (retried), any other 4xx
:class:`PermanentDeliveryError` (dead).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from campaign.common.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from campaign.delivery.policy import parse_retry_after

# Every HTTP request carries the message's idempotency key in this header.
IDEMPOTENCY_HEADER = "Idempotency-Key"
# RFC 8058 one-click unsubscribe.
ONE_CLICK_VALUE = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for a provider: everything decided, nothing left to look up.

    ``to`` is an email address or an E.164 phone number depending on ``medium``;
    ``unsubscribe_url`` (https) and ``unsubscribe_mailto`` feed ``List-Unsubscribe``.
    """

    message_id: int
    idempotency_key: str
    channel: str
    medium: str
    to: str
    campaign: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    variant: str | None = None
    coupon_code: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    is_test: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def list_unsubscribe(self) -> str | None:
        """The ``List-Unsubscribe`` header value (``<https://...>, <mailto:...>``) or None."""
        parts = []
        if self.unsubscribe_url:
            parts.append(f"<{self.unsubscribe_url}>")
        if self.unsubscribe_mailto:
            parts.append(f"<{self.unsubscribe_mailto}>")
        return ", ".join(parts) or None

    def email_headers(self) -> dict[str, str]:
        """Headers every marketing email carries: idempotency and RFC 8058 unsubscribe."""
        headers = {IDEMPOTENCY_HEADER: self.idempotency_key}
        value = self.list_unsubscribe()
        if value:
            headers["List-Unsubscribe"] = value
            if self.unsubscribe_url:
                # One-click needs an https URI to POST to (RFC 8058 section 3.1).
                headers["List-Unsubscribe-Post"] = ONE_CLICK_VALUE
        return headers


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message; ``provider_message_id`` when it gave one."""

    message_id: int
    provider_message_id: str | None = None


Outcome = SendResult | DeliveryError


class Channel(Protocol):
    """A provider adapter.

    ``max_batch`` is how many messages one :meth:`send` call may carry (1 for most;
    SendGrid-style personalizations take up to 1000). ``send`` returns one outcome per
    message, in order; it never raises :class:`DeliveryError` itself. ``lane`` picks
    the HTTP client (see :class:`HttpLanes`) so concurrent senders never queue inside
    one connection pool.
    """

    name: str
    medium: str
    max_batch: int

    async def send(self, messages: Sequence[OutgoingMessage], lane: int = 0) -> list[Outcome]:
        """Deliver ``messages``; one :data:`Outcome` per message, in order."""
        ...

    async def aclose(self) -> None:
        """Release files, sockets and threads."""
        ...


class SingleChannel(ABC):
    """Base for channels that send one message per request: implement ``send_one``."""

    name: str
    medium: str
    max_batch = 1

    @abstractmethod
    async def send_one(self, message: OutgoingMessage, lane: int) -> SendResult:
        """Deliver one message or raise :class:`DeliveryError`."""

    async def send(self, messages: Sequence[OutgoingMessage], lane: int = 0) -> list[Outcome]:
        """Send each message in turn; failures become outcomes, not exceptions."""
        outcomes: list[Outcome] = []
        for message in messages:
            try:
                outcomes.append(await self.send_one(message, lane))
            except DeliveryError as exc:
                outcomes.append(exc)
        return outcomes

    async def aclose(self) -> None:  # noqa: B027 (a real default: most hold nothing)
        """Nothing to release by default."""


class HttpLanes:
    """Several small ``httpx.AsyncClient`` pools instead of one big one.

    httpcore's pool scans its queue on every request, so one client with many requests
    in flight slows down sharply (about 50 requests/s at 64 in flight, measured); a few
    clients with a handful of connections each stay fast. Lane ``i`` uses client
    ``i % clients``; the sender gives each worker its own lane.
    """

    def __init__(
        self, *, clients: int, connections_per_client: int, timeout_seconds: float
    ) -> None:
        limits = httpx.Limits(
            max_connections=connections_per_client,
            max_keepalive_connections=connections_per_client,
        )
        timeout = httpx.Timeout(timeout_seconds)
        self._clients = [
            httpx.AsyncClient(limits=limits, timeout=timeout, follow_redirects=False)
            for _ in range(max(1, clients))
        ]

    def client(self, lane: int) -> httpx.AsyncClient:
        """The client for ``lane``."""
        return self._clients[lane % len(self._clients)]

    async def aclose(self) -> None:
        """Close every client and its connections."""
        await asyncio.gather(*(client.aclose() for client in self._clients))


@contextmanager
def map_http_errors(channel: str, message_id: int | None = None) -> Iterator[None]:
    """Turn httpx transport failures into :class:`TransientDeliveryError` (kept ``from``)."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # The request never left: the provider cannot have it.
        reason = str(exc) or type(exc).__name__
        raise TransientDeliveryError(
            channel, f"connection error: {reason}", message_id
        ) from exc
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(
            channel, f"timeout ({type(exc).__name__})", message_id, maybe_delivered=True
        ) from exc
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise TransientDeliveryError(
            channel, f"connection error: {reason}", message_id, maybe_delivered=True
        ) from exc


def check_response(
    response: httpx.Response,
    channel: str,
    message_id: int | None,
    now: datetime,
) -> None:
    """Raise unless the provider accepted (2xx).

    5xx, 429 and 408 are transient (with the ``Retry-After`` hint in seconds, from
    either header form); any other status is permanent.

    Raises:
        TransientDeliveryError, PermanentDeliveryError
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = _short_reason(response)
    if status >= 500 or status in (408, 429):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        raise TransientDeliveryError(channel, reason, message_id, status, retry_after)
    raise PermanentDeliveryError(channel, reason, message_id, status)


def _short_reason(response: httpx.Response) -> str:
    try:
        body = response.text.strip().replace("\n", " ")
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        body = ""
    phrase = response.reason_phrase or "rejected"
    return f"{phrase}: {body[:200]}" if body else phrase
