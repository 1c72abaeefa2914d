"""The response webhook server (starlette; thin: read, verify, parse, hand to the writer).

Routes (docs/responses.md):

* ``POST /webhooks/events`` – generic Standard Webhooks events;
* ``POST /webhooks/twilio`` – Twilio status callbacks and inbound SMS;
* ``POST /webhooks/sendgrid`` – SendGrid event batches;
* ``POST /webhooks/<channel>`` – the same, by a configured channel's kind (the sender
  points SMS status callbacks at ``{base_url}/webhooks/<channel>``);
* ``GET /unsubscribe`` – a confirmation page only; ``POST /unsubscribe`` – unsubscribes
  (the page's button and RFC 8058 one-click clients);
* ``GET /healthz``.

Answers: 401 bad or stale signature (nothing stored), 400 malformed body (with the
reason), 413 body over ``[server] max_body_bytes`` (counted while reading), 404
unknown endpoint, 2xx once the events are committed (replays and unknown messages
included, so providers never loop on an error).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaign.common import links, signing
from campaign.common.errors import ConfigError, InputError, SignatureError
from campaign.common.optout import StopWords
from campaign.config import Config
from campaign.db.models import User
from campaign.db.queries import unsubscribe_keys
from campaign.responses import pages
from campaign.responses.events import InboundEvent, ResponseType
from campaign.responses.providers import generic, sendgrid, twilio
from campaign.responses.recording import RecordResult
from campaign.responses.writer import BatchWriter

log = logging.getLogger(__name__)

_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_KIND_OF_ENDPOINT = {
    "events": "webhook",
    "webhook": "webhook",
    "twilio": "twilio",
    "sendgrid": "sendgrid",
}


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes while reading (a Content-Length
    header may be absent or lie; chunked bodies have none)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _summary(result: RecordResult) -> dict[str, int]:
    return {"stored": result.stored, "duplicates": result.duplicates, "unmatched": result.unmatched}


class _Server:
    """The state the routes share: config, secrets, the writer and the clock."""

    def __init__(self, config: Config, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        server = config.server
        self.limit = server.max_body_bytes
        self.tolerance = server.signature_tolerance_seconds
        self.secrets = tuple(s.get_secret_value() for s in server.secrets)
        self.media = {name: channel.medium for name, channel in config.channels.items()}
        self.twilio_token = (
            server.twilio_auth_token.get_secret_value() if server.twilio_auth_token else None
        )
        if self.twilio_token is None:
            for channel in config.channels.values():
                if channel.kind == "twilio" and channel.secret is not None:
                    self.twilio_token = channel.secret.get_secret_value()
                    break
        self.sendgrid_secret = (
            server.sendgrid_secret.get_secret_value() if server.sendgrid_secret else None
        )
        self.sendgrid_key = None
        if server.sendgrid_verification_key:
            try:
                self.sendgrid_key = sendgrid.load_verification_key(
                    server.sendgrid_verification_key
                )
            except ValueError as exc:
                raise ConfigError(
                    config.source, "server.sendgrid_verification_key", str(exc)
                ) from None
        with engine.begin() as connection:
            self.link_keys = unsubscribe_keys(
                connection,
                [s.get_secret_value() for s in server.link_secrets],
                self.secrets,
                legacy=server.accept_legacy_links,
            )
        self.stop_words = StopWords(config.responses.stop_words) if (
            config.responses.stop_words is not None
        ) else StopWords()
        self.writer = BatchWriter(
            engine,
            clock=clock,
            media=self.media,
            max_events=server.write_batch_events,
            durable_tracking=server.durable_tracking_commits,
        )

    # -- provider webhooks ------------------------------------------------------------

    def endpoint(self, name: str) -> tuple[str, str, str | None] | None:
        """(kind, provider label, channel secret) of ``/webhooks/<name>``, or None."""
        if name in _KIND_OF_ENDPOINT:
            kind = _KIND_OF_ENDPOINT[name]
            return kind, kind, None
        channel = self.config.channels.get(name)
        if channel is None or channel.kind not in ("webhook", "twilio", "sendgrid"):
            return None
        secret = channel.secret.get_secret_value() if channel.secret is not None else None
        return channel.kind, name, secret

    async def webhook(self, request: Request) -> Response:
        found = self.endpoint(request.path_params["name"])
        if found is None:
            return JSONResponse({"error": "no such endpoint"}, status_code=404)
        kind, provider, channel_secret = found
        try:
            body = await _read_body(request, self.limit)
        except _TooLarge:
            return JSONResponse({"error": f"body over {self.limit} bytes"}, status_code=413)
        now = self.clock()
        try:
            events = self.parse(kind, provider, channel_secret, request, body, now)
        except SignatureError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        result = await self.writer.write(events)
        if kind == "twilio":
            return Response(_TWIML_EMPTY, media_type="text/xml")
        return JSONResponse(_summary(result))

    def parse(
        self,
        kind: str,
        provider: str,
        channel_secret: str | None,
        request: Request,
        body: bytes,
        now: datetime,
    ) -> list[InboundEvent]:
        """Verify then parse; raises SignatureError (401) or InputError (400)."""
        headers = request.headers
        if kind == "webhook":
            secrets = self.secrets + ((channel_secret,) if channel_secret else ())
            event_id = generic.verify(
                secrets, headers, body, now=now, tolerance_seconds=self.tolerance
            )
            return generic.parse(body, event_id, received=now, provider=provider)
        if kind == "twilio":
            params = twilio.form_params(body)
            token = channel_secret or self.twilio_token
            offered = headers.get(twilio.SIGNATURE_HEADER)
            twilio.verify(token, self._public_urls(request), params, offered)
            return twilio.parse(
                params, received=now, provider=provider, stop_words=self.stop_words
            )
        if sendgrid.SIGNATURE_HEADER in headers:
            sendgrid.verify_ecdsa(self.sendgrid_key, headers, body)
        elif signing.SIGNATURE_HEADER in headers:
            secrets = ((self.sendgrid_secret,) if self.sendgrid_secret else ()) + self.secrets
            generic.verify(secrets, headers, body, now=now, tolerance_seconds=self.tolerance)
        else:
            authorization = headers.get("authorization")
            sendgrid.require(sendgrid.verify_basic(self.sendgrid_secret, authorization))
        return sendgrid.parse(body, received=now, provider=provider)

    def _public_urls(self, request: Request) -> list[str]:
        """The URL the provider signed: our public base URL + path, or what we saw."""
        query = request.url.query
        path = request.url.path + (f"?{query}" if query else "")
        public = self.config.shop.base_url.rstrip("/") + path
        seen = str(request.url)
        return [public] if public == seen else [public, seen]

    # -- unsubscribe links ------------------------------------------------------------

    def _link(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        user, channel, token = params.get("u", ""), params.get("c", ""), params.get("t", "")
        if not user or not channel or not token:
            return None
        # Only channels this shop sends on: a link naming another could otherwise
        # become a suppression of some other scope.
        if channel not in self.config.channels:
            return None
        if not links.verify_unsubscribe_token(self.link_keys, user, channel, token):
            return None
        return user, channel

    def _user_locale(self, user_key: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(User.locale).where(User.external_id == user_key)
            ).scalar_one_or_none()

    async def _page_text(self, request: Request, user_key: str | None) -> pages.PageText:
        locale = await run_in_threadpool(self._user_locale, user_key) if user_key else None
        return pages.page_language(
            locale, request.headers.get("accept-language"), self.config.shop.default_locale
        )

    def _channel_label(self, channel: str) -> str:
        return self.media.get(channel, channel)

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET: a confirmation page; never unsubscribes (mail scanners follow links)."""
        link = self._link(request.query_params)
        words = await self._page_text(request, link[0] if link else None)
        if link is None:
            return HTMLResponse(pages.render_page(words, words.invalid), status_code=400)
        channel = self._channel_label(link[1])
        question = words.confirm.format(shop=self.config.shop.name, channel=channel)
        action = f"{request.url.path}?{request.url.query}"
        page = pages.render_page(words, question, form_action=action, button=words.button)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def unsubscribe(self, request: Request) -> Response:
        """POST: unsubscribe (the page's button, or an RFC 8058 one-click POST)."""
        try:
            body = await _read_body(request, self.limit)
        except _TooLarge:
            return PlainTextResponse("body too large", status_code=413)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        params = dict(request.query_params) or form
        one_click = form.get("List-Unsubscribe") == "One-Click"
        link = self._link(params)
        if link is None:
            if one_click:
                return PlainTextResponse("invalid unsubscribe link", status_code=400)
            words = await self._page_text(request, None)
            return HTMLResponse(pages.render_page(words, words.invalid), status_code=400)
        user, channel = link
        now = self.clock()
        event = InboundEvent(
            provider="link",
            # JSON keeps (user, channel) apart whatever they contain (":" included).
            event_id=f"unsubscribe:{json.dumps([user, channel])}:{int(now.timestamp())}"[:255],
            type=ResponseType.UNSUBSCRIBED,
            ts=now,
            user_ref=user,
            channel=channel,
            medium=self.media.get(channel),
            payload={"channel": channel, "one_click": one_click},
        )
        await self.writer.write([event])
        if one_click:
            return PlainTextResponse("unsubscribed")
        words = await self._page_text(request, user)
        done = words.done.format(shop=self.config.shop.name)
        return HTMLResponse(pages.render_page(words, done), headers={"Cache-Control": "no-store"})

    # -- health -----------------------------------------------------------------------

    def _ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self._ping)
        except Exception as exc:  # reported, not raised: a health check answers
            log.warning("health check: database unreachable", exc_info=True)
            return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok"})


def create_app(config: Config, engine: Engine, *, clock: Callable[[], datetime]) -> Starlette:
    """The starlette app of ``campaign serve``; ``clock`` returns aware UTC now.

    The response writer starts and stops with the app's lifespan (uvicorn and
    ``TestClient`` as a context manager both run it).
    """
    server = _Server(config, engine, clock)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await server.writer.start()
        try:
            yield
        finally:
            await server.writer.close()

    routes = [
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/webhooks/{name}", server.webhook, methods=["POST"]),
        Route("/unsubscribe", server.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", server.unsubscribe, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
