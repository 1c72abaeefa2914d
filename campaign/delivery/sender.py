"""The drain loop: claim → re-check → send → record, never losing, doubling or mistiming.

One asyncio loop runs three kinds of task:

* a **producer** claims due messages in batches (under a lease), re-checks each one at
  send time (expiry, consent, suppressions, address, quiet hours in the recipient's
  timezone) and queues the sendable ones, grouped for channels that take batches;
* ``concurrency`` **workers**, each with its own HTTP lane, take a token from the
  channel's bucket and send;
* a **recorder** writes outcomes in batches (one ``executemany`` per kind).

* a **renewer** extends the leases of every row the drain holds (claimed, in flight,
  or sent with the outcome not yet committed) every quarter lease, so a lease cannot
  run out under a live sender however slow its channel; a row it fails to renew is
  no longer ours and is dropped unsent.

A message becomes ``sent`` only when its provider accepted it and that fact is
committed; a crash before then leaves it ``sending`` until the lease runs out, when
another sender claims it and re-sends it with the same idempotency key. No request
starts unless the lease the database last *confirmed* outlasts the request's timeout,
checked after the token-bucket wait; a claim takes of each channel only what its
rate can send within a lease. Database calls run on one worker thread (SQLite has
one writer anyway), so the loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from campaign.common import links
from campaign.common.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from campaign.config import ChannelConfig, Config, QuietHours
from campaign.db.dialect import is_postgresql
from campaign.db.queries import unsubscribe_key
from campaign.delivery import outbox, policy
from campaign.delivery.channels import (
    Channel,
    HttpLanes,
    Outcome,
    OutgoingMessage,
    SendResult,
    build_channels,
)
from campaign.delivery.outbox import ClaimedMessage, Dead, Record, Retry, Sent, Skipped
from campaign.delivery.ratelimit import TokenBucket

log = logging.getLogger("campaign.delivery")

T = TypeVar("T")

# ``claims - attempts`` counts claims that ended in no outcome (the sender died or
# stalled holding the row). A message with an expiry is retried until it expires (its
# provider may hold it: never "dead", which --requeue-dead would send again); one
# without expiry goes dead after this many, rather than loop forever.
CRASH_ALLOWANCE = 10


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


@dataclass(frozen=True)
class _Work:
    channel: str
    messages: list[tuple[ClaimedMessage, OutgoingMessage]]


# Stored errors start with "<channel> message <id>: "; summaries drop that prefix.
_MESSAGE_PREFIX = re.compile(r"^\S+ message \d+: ")


def reason_of(error: str) -> str:
    """An error without its per-message prefix, so that equal causes group."""
    return _MESSAGE_PREFIX.sub("", error.strip(), count=1)


def make_owner() -> str:
    """A lease owner id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def quiet_window(name: str, channel: ChannelConfig, config: Config) -> QuietHours:
    """The quiet-hours window of a channel: its own, else its medium's, else the default."""
    if channel.quiet_hours is not None:
        return channel.quiet_hours
    by_medium = config.delivery.quiet_hours_by_medium.get(channel.medium)
    return by_medium if by_medium is not None else config.delivery.quiet_hours


def drain_outbox(
    engine: Engine,
    config: Config,
    *,
    once: bool,
    now: Callable[[], datetime],
    progress: Callable[[int], None] | None = None,
    channels: Mapping[str, Channel] | None = None,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
    owner: str | None = None,
    wrap_channel: Callable[[str, Channel], Channel] | None = None,
    rate_buckets: Callable[[str], TokenBucket | None] | None = None,
) -> DrainReport:
    """Send due outbox messages; with ``once``, return when none is due, else poll.

    ``now`` is the clock (UTC-aware). ``channels`` replaces the adapters built from
    ``config.channels`` (tests, benchmarks); ``rng`` draws the backoff jitter; setting
    ``stop`` ends the drain gracefully: no new claims, in-flight sends finish, queued
    work is released for the next sender. ``progress`` is called, after each recorded
    batch, with the number of messages this drain is done with: a final status, a
    deferral to the end of quiet hours or a retry later (not work handed back unsent).
    ``wrap_channel`` decorates every channel (the daemon adds metrics); ``rate_buckets`` makes each
    channel's token bucket (the daemon's share of a rate split among workers; default:
    one bucket per channel at its ``rate_per_second``).
    """
    drainer = _Drainer(
        engine,
        config,
        once=once,
        now=now,
        progress=progress,
        channels=channels,
        rng=rng or random.Random(),
        stop=stop or threading.Event(),
        owner=owner or make_owner(),
        wrap_channel=wrap_channel,
        rate_buckets=rate_buckets,
    )
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(drainer.run())


class _Drainer:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        once: bool,
        now: Callable[[], datetime],
        progress: Callable[[int], None] | None,
        channels: Mapping[str, Channel] | None,
        rng: random.Random,
        stop: threading.Event,
        owner: str,
        wrap_channel: Callable[[str, Channel], Channel] | None = None,
        rate_buckets: Callable[[str], TokenBucket | None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.delivery = config.delivery
        self.once = once
        self.now = now
        self.progress = progress
        self.injected = channels
        self.rng = rng
        self.stop = stop
        self.owner = owner
        self.wrap_channel = wrap_channel
        self.rate_buckets = rate_buckets
        self.report = DrainReport()
        self.pending: list[Record] = []
        self.pending_done = 0  # of ``pending``: records that are not work handed back
        self.inflight = 0
        # id -> the lease end the database last confirmed, for every row this drain
        # holds until its outcome is committed; ``lost``: rows another sender took.
        self.leases: dict[int, datetime] = {}
        self.lost: set[int] = set()
        # Requests queued per channel and not yet started (the rate-aware claim).
        self.waiting: Counter[str] = Counter()
        self._unsubscribe_secret: bytes | None = None
        self.media = {name: channel.medium for name, channel in config.channels.items()}

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def run(self) -> DrainReport:
        started = time.perf_counter()
        delivery = self.delivery
        self.executor = ThreadPoolExecutor(
            max_workers=2 if is_postgresql(self.engine) else 1, thread_name_prefix="outbox"
        )
        self._unsubscribe_secret = await self._db(self._load_unsubscribe_key)
        self.lanes = HttpLanes(
            clients=delivery.http_clients,
            connections_per_client=delivery.http_connections_per_client,
            timeout_seconds=delivery.timeout_seconds,
        )
        if self.injected is not None:
            self.channels = dict(self.injected)
        else:
            self.channels = build_channels(
                self.config.channels,
                lanes=self.lanes,
                clock=self.now,
                timeout_seconds=delivery.timeout_seconds,
                resolve_path=self.config.resolve_path,
                status_callback_base=self.config.shop.base_url,
            )
        if self.wrap_channel is not None:
            # campaign.daemon: per-send metrics and the cross-worker rate limit.
            self.channels = {n: self.wrap_channel(n, c) for n, c in self.channels.items()}
        # A claim can fill the largest provider batch: a SendGrid-style channel taking
        # 1000 recipients per request is not held to delivery.batch_size (default 200).
        self.claim_size = max(
            [self.delivery.batch_size, *(c.max_batch for c in self.channels.values())]
        )
        self.buckets: dict[str, TokenBucket] = {}
        for name, cfg in self.config.channels.items():
            bucket = (
                self.rate_buckets(name)
                if self.rate_buckets is not None
                else TokenBucket(cfg.rate_per_second)
            )
            if bucket is not None:
                self.buckets[name] = bucket
        self.queue: asyncio.Queue[_Work | None] = asyncio.Queue()
        self.room = asyncio.Event()
        self.room.set()
        self.wake = asyncio.Event()
        self.producing = True
        recorder = asyncio.create_task(self._recorder())
        renewer = asyncio.create_task(self._renewer())
        workers = [asyncio.create_task(self._worker(lane)) for lane in range(delivery.concurrency)]
        try:
            await self._produce()
            await self.queue.join()
        finally:
            for _ in workers:
                self.queue.put_nowait(None)
            await asyncio.gather(*workers, return_exceptions=True)
            self.producing = False
            self.wake.set()
            await recorder
            await self._flush()
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            if self.injected is None:
                for channel in self.channels.values():
                    await channel.aclose()
            await self.lanes.aclose()
            self.executor.shutdown(wait=True)
            self.report.elapsed_seconds = time.perf_counter() - started
        return self.report

    # -- producer -------------------------------------------------------------------

    async def _produce(self) -> None:
        batch_size = self.claim_size
        while not self.stop.is_set():
            full = self._full_channels()
            if self.inflight >= batch_size or (full and full >= set(self.channels)):
                # Keep at most about two batches claimed: claimed work ages toward its
                # lease expiry while it waits.
                await self._wait_for_room()
                continue
            now = self.now()
            claimed = await self._db(
                outbox.claim_batch,
                self.engine,
                owner=self.owner,
                now=now,
                lease_seconds=self.delivery.lease_seconds,
                limit=self._claim_limit(batch_size),
                sent_since=(
                    now - timedelta(days=self.delivery.frequency_window_days)
                    if self.delivery.frequency_cap
                    else None
                ),
                exclude_channels=sorted(full),
            )
            if not claimed:
                if full or (self.once and self.inflight > 0):
                    # Only channels we already hold enough of may have due work left,
                    # or work in hand may yet be handed back: wait, then look again.
                    await self._wait_for_room()
                    continue
                if self.once:
                    if self.pending:
                        # Work handed back in this drain is due again once committed.
                        await self._flush()
                        continue
                    return
                await self._idle(self.delivery.poll_interval_seconds)
                continue
            self.report.claimed += len(claimed)
            for message in claimed:
                self.leases[message.id] = message.lease_until
            self._dispatch(claimed)

    async def _wait_for_room(self) -> None:
        self.room.clear()
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.room.wait(), timeout=0.2)
                return
            except TimeoutError:
                continue

    def _request_capacity(self, channel: str) -> int:
        """Requests of ``channel`` this drain may hold unsent: what its rate sends
        within a lease, less the time one request may take (at least one)."""
        bucket = self.buckets.get(channel)
        if bucket is None:
            return 1 << 30
        horizon = self.delivery.lease_seconds - self.delivery.timeout_seconds - 1
        return max(1, int(bucket.rate * max(0.0, horizon)))

    def _claim_limit(self, room: int) -> int:
        """At most ``room`` messages, and no more than the channels with room can take
        within a lease: a slow channel is not claimed 200 at a time to send 8."""
        free = 0
        for name, channel in self.channels.items():
            spare = self._request_capacity(name) - self.waiting[name]
            if spare > 0:
                free += spare * max(1, channel.max_batch)
            if free >= room:
                return max(1, room)
        return max(1, min(room, free))

    def _full_channels(self) -> set[str]:
        return {
            name for name, n in self.waiting.items() if n >= self._request_capacity(name)
        }

    async def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, seconds))

    def _dispatch(self, claimed: list[ClaimedMessage]) -> None:
        now = self.now()
        groups: dict[str, list[tuple[ClaimedMessage, OutgoingMessage]]] = {}
        # Messages of this claim already passed, per user and channel: two messages to
        # one person in one claim count against the frequency cap together.
        passed: dict[int, Counter[str]] = {}
        for message in claimed:
            decision = self._decide(message, now, passed.get(message.user_id))
            if isinstance(decision, OutgoingMessage):
                groups.setdefault(message.channel, []).append((message, decision))
                if not message.is_test:
                    passed.setdefault(message.user_id, Counter())[message.channel] += 1
            else:
                self._add(decision, message)
        for name, items in groups.items():
            size = max(1, self.channels[name].max_batch)
            room = self._request_capacity(name) - self.waiting[name]
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                if room <= 0:
                    # More than the channel's rate can send before the lease ends: hand
                    # it back at once for this or another sender to take later.
                    for handed_back, _ in chunk:
                        self.report.released += 1
                        self._add(Retry(handed_back.id, now), handed_back, released=True)
                    continue
                room -= 1
                self.inflight += len(chunk)
                self.waiting[name] += 1
                self.queue.put_nowait(_Work(name, chunk))

    def _decide(
        self,
        message: ClaimedMessage,
        now: datetime,
        passed: Mapping[str, int] | None = None,
    ) -> OutgoingMessage | Record:
        """The send-time re-check of one claimed message.

        ``passed`` counts, by channel, this user's messages already passed in the same
        claim (they count against the frequency cap like sent ones).
        """
        channel_config = self.config.channels.get(message.channel)
        if channel_config is None or message.channel not in self.channels:
            return Dead(message.id, f"channel {message.channel!r} is not configured")
        if message.expires_at is None and message.claims - message.attempts > CRASH_ALLOWANCE:
            return Dead(
                message.id,
                f"claimed {message.claims} times with {message.attempts} recorded requests:"
                " senders kept dying or stalling while holding it",
            )
        if policy.is_expired(now, message.expires_at):
            return Skipped(message.id, policy.SKIP_EXPIRED)
        medium = channel_config.medium
        address = message.address(medium)
        reason = policy.skip_reason(
            policy.Recipient(
                medium=medium,
                address=address,
                consent_email=message.consent_email,
                consent_sms=message.consent_sms,
                suppressed=message.is_suppressed(medium),
                forgotten=message.forgotten and not message.address_override,
                is_test=message.is_test and bool(message.address_override),
            )
        )
        if reason is not None:
            return Skipped(message.id, reason)
        if not message.is_test and self._capped(message, medium, passed):
            return Skipped(message.id, policy.SKIP_FREQUENCY_CAPPED)
        if not message.is_test:
            tz = policy.resolve_timezone(message.timezone, self.config.shop.timezone)
            window = quiet_window(message.channel, channel_config, self.config)
            allowed_at = policy.next_allowed_time(now, tz, window)
            if allowed_at > now:
                if policy.is_expired(allowed_at, message.expires_at):
                    return Skipped(message.id, policy.SKIP_EXPIRED, "quiet hours until expiry")
                self.report.deferred += 1
                return Retry(message.id, allowed_at)
        assert address is not None
        return self._outgoing(message, medium, address)

    def _capped(
        self, message: ClaimedMessage, medium: str, passed: Mapping[str, int] | None
    ) -> bool:
        caps = self.delivery.frequency_cap
        if not caps:
            return False
        sent: Mapping[str, int] = message.sent_recently
        if passed:
            sent = Counter(sent) + Counter(passed)
        return policy.is_frequency_capped(message.channel, medium, sent, caps, self.media)

    def _load_unsubscribe_key(self) -> bytes:
        # Once per drain: the same key the planner signed these messages' links with.
        secrets = [secret.get_secret_value() for secret in self.config.server.link_secrets]
        with self.engine.begin() as connection:
            return unsubscribe_key(connection, secrets)

    def _outgoing(self, message: ClaimedMessage, medium: str, address: str) -> OutgoingMessage:
        unsubscribe_url = None
        if medium == "email" and message.user_external_id:
            assert self._unsubscribe_secret is not None  # loaded when run() starts
            unsubscribe_url = links.unsubscribe_url(
                self.config.shop.base_url,
                self._unsubscribe_secret,
                message.user_external_id,
                message.channel,
            )
        is_sms = medium == "sms"
        return OutgoingMessage(
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            channel=message.channel,
            medium=medium,
            to=address.strip(),
            campaign=message.campaign,
            subject=None if is_sms else message.subject,
            html=None if is_sms else message.body,
            text=(message.text_body or message.body) if is_sms else message.text_body,
            variant=message.variant,
            coupon_code=message.coupon_code,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=self.delivery.unsubscribe_mailto if medium == "email" else None,
            is_test=message.is_test,
        )

    # -- workers --------------------------------------------------------------------

    async def _worker(self, lane: int) -> None:
        while True:
            work = await self.queue.get()
            if work is None:
                self.queue.task_done()
                return
            self.waiting[work.channel] -= 1
            self.room.set()
            try:
                await self._send(work, lane)
            finally:
                self.inflight -= len(work.messages)
                if self.inflight < self.claim_size:
                    self.room.set()
                self.queue.task_done()

    def _sendable(
        self, work: _Work, now: datetime
    ) -> list[tuple[ClaimedMessage, OutgoingMessage]]:
        """The messages of ``work`` that may start a request now; the others go back.

        A request starts only under a lease the database confirmed to outlast its
        timeout (renewals keep it so while the database answers), never after a stop,
        and never for a row another sender took over.
        """
        margin = timedelta(seconds=self.delivery.timeout_seconds + 1)
        live: list[tuple[ClaimedMessage, OutgoingMessage]] = []
        for claimed, outgoing in work.messages:
            if claimed.id in self.lost:
                continue
            lease = self.leases.get(claimed.id, claimed.lease_until)
            if self.stop.is_set() or now + margin > lease:
                self.report.released += 1
                self._add(Retry(claimed.id, now), claimed, released=True)
            else:
                live.append((claimed, outgoing))
        return live

    async def _send(self, work: _Work, lane: int) -> None:
        channel = self.channels[work.channel]
        if not self._sendable(work, self.now()):
            return
        bucket = self.buckets.get(work.channel)
        if bucket is not None:
            await bucket.acquire(should_stop=self.stop.is_set)
        # Checked again after the wait: a slow channel's bucket can take longer than
        # a lease, and a stop or a lost lease may have come meanwhile.
        live = self._sendable(work, self.now())
        if not live:
            return
        self.report.requests += 1
        try:
            outcomes = await channel.send([outgoing for _, outgoing in live], lane=lane)
        except Exception as exc:  # a bug in an adapter must not stop the drain
            log.exception("delivery.channel.crashed channel=%s", work.channel)
            error = TransientDeliveryError(work.channel, f"internal error: {exc!r}")
            outcomes = [error for _ in live]
        now = self.now()
        for (claimed, _), outcome in zip(live, outcomes, strict=True):
            self._add(self._after_send(claimed, outcome, now), claimed)

    def _after_send(self, message: ClaimedMessage, outcome: Outcome, now: datetime) -> Record:
        if isinstance(outcome, SendResult):
            return Sent(message.id, outcome.provider_message_id)
        error = _describe(outcome)
        if isinstance(outcome, PermanentDeliveryError) or not isinstance(outcome, DeliveryError):
            return Dead(message.id, error, attempted=True)
        attempt = message.attempts + 1
        unknown = isinstance(outcome, TransientDeliveryError) and outcome.maybe_delivered
        if attempt >= self.delivery.max_attempts:
            # A request whose answer never came may have been accepted: it is retried
            # until the message expires rather than recorded dead (which --requeue-dead
            # would send again); only a message without expiry has a last word.
            if not unknown:
                return Dead(message.id, f"attempts exhausted: {error}", attempted=True)
            if message.expires_at is None and attempt >= self.delivery.max_attempts + (
                CRASH_ALLOWANCE
            ):
                return Dead(
                    message.id, f"attempts exhausted, outcome unknown: {error}", attempted=True
                )
        retry_after = outcome.retry_after if isinstance(outcome, TransientDeliveryError) else None
        delay = policy.retry_delay(
            min(attempt, self.delivery.max_attempts),
            base_seconds=self.delivery.backoff_base_seconds,
            max_seconds=self.delivery.backoff_max_seconds,
            rng=self.rng,
            retry_after=retry_after,
        )
        at = now + timedelta(seconds=delay)
        if policy.is_expired(at, message.expires_at):
            return Skipped(message.id, policy.SKIP_EXPIRED, error, attempted=True)
        return Retry(message.id, at, error, attempted=True)

    # -- recorder -------------------------------------------------------------------

    def _add(self, record: Record, message: ClaimedMessage, *, released: bool = False) -> None:
        self.pending.append(record)
        if not released:
            self.pending_done += 1
        report = self.report
        channel = message.channel
        if isinstance(record, Sent):
            report.sent += 1
            _log_outcome(logging.INFO, "sent", message, provider_id=record.provider_message_id)
        elif isinstance(record, Dead):
            report.dead += 1
            report.reasons["dead", channel, reason_of(record.error)] += 1
            _log_outcome(logging.WARNING, "dead", message, error=reason_of(record.error))
        elif isinstance(record, Skipped):
            report.skipped[record.reason] += 1
            if record.error:
                report.reasons["skipped", channel, f"{record.reason}: "
                               f"{reason_of(record.error)}"] += 1
            _log_outcome(logging.INFO, "skipped", message, reason=record.reason,
                         error=reason_of(record.error) if record.error else None)
        elif released:
            _log_outcome(logging.DEBUG, "released", message)
        elif not record.attempted:
            _log_outcome(logging.INFO, "deferred", message, until=record.at.isoformat(),
                         reason="quiet hours")
        else:
            report.retried += 1
            error = reason_of(record.error or "unknown error")
            report.reasons["retry", channel, error] += 1
            _log_outcome(logging.WARNING, "retry", message, at=record.at.isoformat(),
                         error=error)
        if len(self.pending) >= 1000:
            self.wake.set()

    async def _recorder(self) -> None:
        while self.producing:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=0.05)
            except TimeoutError:
                pass
            self.wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        records, self.pending = self.pending, []
        done, self.pending_done = self.pending_done, 0
        stale = await self._db(
            outbox.record_outcomes, self.engine, records, owner=self.owner, now=self.now()
        )
        # Committed: these rows are no longer ours to renew.
        for record in records:
            self.leases.pop(record.id, None)
        for outcome in stale:
            self.report.stale += 1
            if outcome.duplicate:
                self.report.duplicates += 1
            log.warning(
                "delivery.message.stale id=%s duplicate=%s holder=%s",
                outcome.id, outcome.duplicate, outcome.holder,
            )
        if self.progress is not None and done:
            self.progress(done)

    # -- renewer --------------------------------------------------------------------

    async def _renewer(self) -> None:
        """Every quarter lease, extend the leases of every row this drain holds."""
        interval = max(0.2, self.delivery.lease_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            held = [i for i in self.leases if i not in self.lost]
            if not held:
                continue
            asked = self.now()
            try:
                renewed = await self._db(
                    outbox.renew_leases,
                    self.engine,
                    held,
                    owner=self.owner,
                    now=asked,
                    lease_seconds=self.delivery.lease_seconds,
                )
            except Exception:  # the database is away: the old leases stand until it is back
                log.warning("delivery.lease.renew_failed owner=%s", self.owner, exc_info=True)
                continue
            # The lease counts from when we asked, not from when the database answered.
            until = asked + timedelta(seconds=self.delivery.lease_seconds)
            recording = {record.id for record in self.pending}
            for message_id in held:
                if message_id not in self.leases:
                    continue  # recorded meanwhile
                if message_id in renewed:
                    self.leases[message_id] = until
                elif message_id not in recording:
                    self.lost.add(message_id)
                    self.leases.pop(message_id, None)
                    self.report.lost += 1
                    log.warning("delivery.lease.lost id=%s owner=%s", message_id, self.owner)


def _log_outcome(level: int, outcome: str, message: ClaimedMessage, **fields: Any) -> None:
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


def _describe(outcome: BaseException) -> str:
    text = str(outcome) or type(outcome).__name__
    return text[:1000]


