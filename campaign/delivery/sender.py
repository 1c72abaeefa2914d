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

The four tasks share the drain's state (leases held, requests waiting per channel),
so they stay together here; the decisions they apply live beside it: the send-time
re-check in :mod:`.checks`, what a provider's answer means in :mod:`.answers`, the
counting and logging of outcomes in :mod:`.drain_report`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from campaign.common.errors import TransientDeliveryError
from campaign.config import Config
from campaign.db.dialect import is_server
from campaign.db.queries import unsubscribe_key
from campaign.delivery import outbox
from campaign.delivery.answers import record_answer
from campaign.delivery.channels import (
    Channel,
    HttpLanes,
    OutgoingMessage,
    build_channels,
)
from campaign.delivery.checks import SendCheck
from campaign.delivery.drain_report import DrainReport
from campaign.delivery.outbox import ClaimedMessage
from campaign.delivery.outcomes import Record, Retry
from campaign.delivery.ratelimit import TokenBucket

log = logging.getLogger("campaign.delivery")

T = TypeVar("T")

@dataclass(frozen=True)
class _Work:
    channel: str
    messages: list[tuple[ClaimedMessage, OutgoingMessage]]


def make_owner() -> str:
    """A lease owner id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
        # Ids whose outcomes the recorder is committing right now (out of ``pending``,
        # still in ``leases``): a renewal that misses them did not lose them.
        self.flushing: set[int] = set()
        # Requests queued per channel and not yet started (the rate-aware claim).
        self.waiting: Counter[str] = Counter()

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def run(self) -> DrainReport:
        started = time.perf_counter()
        delivery = self.delivery
        self.executor = ThreadPoolExecutor(
            max_workers=2 if is_server(self.engine) else 1, thread_name_prefix="outbox"
        )
        unsubscribe_secret = await self._db(self._load_unsubscribe_key)
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
        self.check = SendCheck(self.config, set(self.channels), unsubscribe_secret)
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
                # Ours again (handed back, then claimed anew): a lease lost before
                # says nothing about this one.
                self.lost.discard(message.id)
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
            decision = self.check.decide(message, now, passed.get(message.user_id))
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
                        self._add(Retry(handed_back.id, now), handed_back, released=True)
                    continue
                room -= 1
                self.inflight += len(chunk)
                self.waiting[name] += 1
                self.queue.put_nowait(_Work(name, chunk))

    def _load_unsubscribe_key(self) -> bytes:
        # Once per drain: the same key the planner signed these messages' links with.
        secrets = [secret.get_secret_value() for secret in self.config.server.link_secrets]
        with self.engine.begin() as connection:
            return unsubscribe_key(connection, secrets)

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
            record = record_answer(claimed, outcome, now, self.delivery, self.rng)
            self._add(record, claimed)

    # -- recorder -------------------------------------------------------------------

    def _add(self, record: Record, message: ClaimedMessage, *, released: bool = False) -> None:
        """Queue ``record`` for the recorder and count it (``released``: handed back)."""
        self.pending.append(record)
        if not released:
            self.pending_done += 1
        self.report.count(record, message, released=released)
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
        flushing = {record.id for record in records}
        self.flushing |= flushing
        try:
            stale = await self._db(
                outbox.record_outcomes, self.engine, records, owner=self.owner, now=self.now()
            )
        finally:
            self.flushing -= flushing
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
            # Each held row with the lease it had when asked: a row claimed anew or
            # recorded while the renewal ran is judged by what happened since, not lost.
            held = {i: until for i, until in self.leases.items() if i not in self.lost}
            if not held:
                continue
            asked = self.now()
            try:
                renewed = await self._db(
                    outbox.renew_leases,
                    self.engine,
                    list(held),
                    owner=self.owner,
                    now=asked,
                    lease_seconds=self.delivery.lease_seconds,
                )
            except Exception:  # the database is away: the old leases stand until it is back
                log.warning("delivery.lease.renew_failed owner=%s", self.owner, exc_info=True)
                continue
            # The lease counts from when we asked, not from when the database answered.
            until = asked + timedelta(seconds=self.delivery.lease_seconds)
            recording = {record.id for record in self.pending} | self.flushing
            for message_id, asked_with in held.items():
                if self.leases.get(message_id) != asked_with:
                    continue  # recorded, or claimed anew, meanwhile
                if message_id in renewed:
                    self.leases[message_id] = until
                elif message_id not in recording:
                    self.lost.add(message_id)
                    self.leases.pop(message_id, None)
                    self.report.lost += 1
                    log.warning("delivery.lease.lost id=%s owner=%s", message_id, self.owner)
