"""The sender loop of a daemon or worker, its heartbeat, and the shared rate limit.

Several senders on one PostgreSQL database claim disjoint outbox batches (``FOR
UPDATE SKIP LOCKED`` in :mod:`campaign.delivery.outbox`). A channel's rate limit must
hold for all of them together. We chose to **divide the rate among live senders**:
every sender upserts a row in ``worker_heartbeats`` every ``heartbeat_seconds`` and
counts the rows younger than three beats; its buckets then run at ``rate / live``.
That costs no database round trip per request (a shared token row would cost one per
send and serialise every worker on one row). The price: for up to one heartbeat after
a worker starts, the total may exceed the limit by that worker's share, and after one
dies the others under-use its share until its row ages out (three beats).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from campaign.config import Config
from campaign.daemon.logging import log_event
from campaign.daemon.metrics import MeteredChannel, Metrics
from campaign.db.base import table_of
from campaign.db.models import WorkerHeartbeat
from campaign.delivery.channels import Channel
from campaign.delivery.ratelimit import TokenBucket
from campaign.delivery.sender import DrainReport, drain_outbox, make_owner

log = logging.getLogger("campaign.daemon")

_beats = table_of(WorkerHeartbeat)

# A sender is live while its heartbeat is younger than this many beats.
LIVE_BEATS = 3


def beat(engine: Engine, owner: str, kind: str, *, now: datetime, live_seconds: float) -> int:
    """Refresh ``owner``'s heartbeat and return how many senders are live (at least 1)."""
    with engine.begin() as connection:
        updated = connection.execute(
            update(_beats).where(_beats.c.owner == owner).values(heartbeat_at=now)
        ).rowcount
        if not updated:
            try:
                with connection.begin_nested():
                    connection.execute(
                        _beats.insert().values(
                            owner=owner, kind=kind, started_at=now, heartbeat_at=now
                        )
                    )
            except IntegrityError:
                pass
        cutoff = now - timedelta(seconds=live_seconds)
        # Rows of senders dead for long are cleaned by whoever beats next.
        connection.execute(
            delete(_beats).where(_beats.c.heartbeat_at < now - timedelta(seconds=10 * live_seconds))
        )
        live = connection.execute(
            select(func.count()).where(_beats.c.heartbeat_at >= cutoff)
        ).scalar()
    return max(1, int(live or 0))


def forget_beat(engine: Engine, owner: str) -> None:
    """Remove ``owner``'s heartbeat (clean shutdown): the others take its rate share."""
    with engine.begin() as connection:
        connection.execute(delete(_beats).where(_beats.c.owner == owner))


class RateShare:
    """Shared-rate buckets of one sender: each channel's rate divided by live senders."""

    def __init__(self, config: Config) -> None:
        self.rates = {name: c.rate_per_second for name, c in config.channels.items()}
        self.buckets: dict[str, TokenBucket] = {}
        self.live = 1

    def bucket(self, channel: str) -> TokenBucket | None:
        """A bucket for ``channel`` at its current share (created inside the send loop)."""
        rate = self.rates.get(channel)
        if rate is None:
            return None
        bucket = TokenBucket(rate / self.live)
        self.buckets[channel] = bucket
        return bucket

    def set_live(self, live: int) -> None:
        """Re-divide every channel's rate among ``live`` senders."""
        self.live = max(1, live)
        for name, bucket in list(self.buckets.items()):
            rate = self.rates[name] / self.live
            # Plain attribute writes: the asyncio loop reads them on its next acquire.
            bucket.rate = rate
            bucket.burst = max(1.0, rate)


class SenderService:
    """``drain_outbox`` in a thread, with a heartbeat thread beside it.

    :meth:`stop` asks the drain to stop claiming; in-flight sends finish and claimed
    but unsent messages are released; :meth:`join` waits for that.
    """

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics,
        kind: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.kind = kind
        self.progress = progress
        self.owner = make_owner()
        self.share = RateShare(config)
        self.stopping = threading.Event()
        self.report: DrainReport | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="sender", daemon=True)
        self._beat_thread = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)

    @property
    def live_seconds(self) -> float:
        return LIVE_BEATS * self.config.daemon.heartbeat_seconds

    def start(self) -> None:
        """Beat once (so the first claims already use the right share), then start."""
        self._beat()
        self._beat_thread.start()
        self._thread.start()
        log_event(log, "delivery.sender.started", owner=self.owner, kind=self.kind)

    def alive(self) -> bool:
        """Whether the drain thread is running."""
        return self._thread.is_alive()

    def _wrap(self, name: str, channel: Channel) -> Channel:
        # The rate share is the drain's own bucket (rate_buckets below), so leases are
        # checked after its wait; the metered channel only measures.
        return MeteredChannel(channel, None, self.metrics)

    def _drain(self) -> None:
        try:
            self.report = drain_outbox(
                self.engine,
                self.config,
                once=False,
                now=self.clock,
                stop=self.stopping,
                owner=self.owner,
                progress=self.progress,
                wrap_channel=self._wrap,
                rate_buckets=self.share.bucket,
            )
        except BaseException as exc:  # recorded for health; the daemon decides what to do
            self.error = exc
            log.error("delivery.sender.crashed owner=%s", self.owner, exc_info=True)

    def _beat(self) -> None:
        try:
            live = beat(
                self.engine, self.owner, self.kind, now=self.clock(),
                live_seconds=self.live_seconds,
            )
        except SQLAlchemyError:
            log.warning("delivery.heartbeat.failed owner=%s", self.owner, exc_info=True)
            return
        if live != self.share.live:
            log_event(log, "delivery.rate.shared", live_senders=live)
        self.share.set_live(live)
        self.metrics.rate_share.set(1.0 / live)

    def _beat_loop(self) -> None:
        while not self.stopping.wait(self.config.daemon.heartbeat_seconds):
            self._beat()

    def stop(self) -> None:
        """Stop claiming; in-flight sends finish, claimed-but-unsent work is released."""
        self.stopping.set()

    def join(self, timeout: float | None) -> bool:
        """Wait for the drain to end; True when it did. Removes the heartbeat then."""
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done:
            try:
                forget_beat(self.engine, self.owner)
            except SQLAlchemyError:
                log.warning("delivery.heartbeat.not_removed owner=%s", self.owner, exc_info=True)
            report = self.report
            log_event(
                log, "delivery.sender.stopped", owner=self.owner,
                sent=report.sent if report else 0, released=report.released if report else 0,
            )
        return done
