"""Prometheus metrics of one daemon or worker (served on ``/metrics``, docs/operations.md).

Two kinds: counters and histograms this process updates as it works (sends, provider
errors, runs), and gauges read from the database at scrape time (messages by status,
outbox depth, live senders, pauses, last runs, the active model's metrics), so every
process reports the same database-wide figures and a restart loses no state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from campaign.common.errors import PermanentDeliveryError
from campaign.db.base import table_of
from campaign.db.models import (
    CampaignRun,
    CampaignState,
    CouponAnnouncement,
    Message,
    MessageStatus,
    ModelVersion,
    WorkerHeartbeat,
)
from campaign.delivery.channels import Channel, Outcome, OutgoingMessage, SendResult
from campaign.delivery.ratelimit import TokenBucket

log = logging.getLogger("campaign.daemon")

# Provider round trips: 5 ms (a local sink) to 30 s (a timeout).
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """This process's registry: in-process instruments plus the database collector."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        live_seconds: float = 15.0,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.send_seconds = Histogram(
            "campaign_send_seconds", "Provider request latency per channel (one request).",
            ["channel"], buckets=SEND_BUCKETS, registry=r,
        )
        self.sent = Counter(
            "campaign_messages_sent", "Messages a provider accepted, sent by this process.",
            ["channel"], registry=r,
        )
        self.provider_errors = Counter(
            "campaign_provider_errors",
            "Failed sends by channel and kind (transient: retried; permanent: dead).",
            ["channel", "kind"], registry=r,
        )
        self.run_seconds = Histogram(
            "campaign_run_seconds", "Wall time of scheduled campaign runs in this process.",
            ["campaign"], buckets=RUN_BUCKETS, registry=r,
        )
        self.runs = Counter(
            "campaign_runs", "Scheduled slots handled by this process, by outcome.",
            ["campaign", "status"], registry=r,
        )
        self.is_leader = Gauge(
            "campaign_scheduler_leader", "1 when this process runs the scheduler.", registry=r
        )
        self.rate_share = Gauge(
            "campaign_rate_share",
            "This process's share of each channel's rate limit (1 / live senders).",
            registry=r,
        )
        self.rate_share.set(1.0)
        # The standard process_* (CPU, memory, file descriptors, start time), python_gc_*
        # and python_info series, and which build is running.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("campaign_build", "The running campaign build.", registry=r).info(build_info())
        if engine is not None and clock is not None:
            r.register(DatabaseCollector(engine, clock, live_seconds))

    def observe_send(self, channel: str, seconds: float, outcomes: Sequence[Outcome]) -> None:
        """Record one provider request and its outcomes."""
        self.send_seconds.labels(channel).observe(seconds)
        for outcome in outcomes:
            if isinstance(outcome, SendResult):
                self.sent.labels(channel).inc()
            else:
                kind = "permanent" if isinstance(outcome, PermanentDeliveryError) else "transient"
                self.provider_errors.labels(channel, kind).inc()


def build_info() -> dict[str, str]:
    """Version labels of ``campaign_build_info``: the product and the libraries whose
    versions change its behaviour (stored models, SQL, HTTP)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from campaign import __version__

    labels = {"version": __version__, "python": platform.python_version()}
    for package in ("scikit-learn", "sqlalchemy", "httpx", "jinja2"):
        try:
            labels[package.replace("-", "_")] = version(package)
        except PackageNotFoundError:
            labels[package.replace("-", "_")] = "none"
    return labels


class DatabaseCollector(Collector):
    """Database-wide gauges, read at scrape time (a handful of GROUP BY queries)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], live_seconds: float) -> None:
        self.engine = engine
        self.clock = clock
        self.live_seconds = live_seconds

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("campaign_database_up", "1 when the database answered the scrape.")
        try:
            families = self._read()
        except Exception:  # a scrape must answer even when the database does not
            log.warning("daemon.metrics.database_unreachable", exc_info=True)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        from datetime import timedelta

        now = self.clock()
        messages = GaugeMetricFamily(
            "campaign_messages", "Outbox rows by campaign, channel and status.",
            labels=["campaign", "channel", "status"],
        )
        depth = GaugeMetricFamily(
            "campaign_outbox_depth", "Queued messages due now (waiting for a sender)."
        )
        live = GaugeMetricFamily("campaign_live_senders", "Senders with a fresh heartbeat.")
        paused = GaugeMetricFamily(
            "campaign_paused", "1 for each paused campaign ('*' is pause-all).", labels=["campaign"]
        )
        last_run = GaugeMetricFamily(
            "campaign_last_run_timestamp_seconds", "Slot of the newest run per campaign.",
            labels=["campaign", "status"],
        )
        model = GaugeMetricFamily(
            "campaign_model_metric", "Evaluation metrics of the active model of each kind.",
            labels=["kind", "version", "metric"],
        )
        unannounced = GaugeMetricFamily(
            "campaign_coupon_announcements_pending",
            "Runs whose coupon codes the shop's webhook has not accepted yet.",
        )
        oldest_unannounced = GaugeMetricFamily(
            "campaign_coupon_announcement_oldest_pending_seconds",
            "Age of the oldest announcement the shop has not accepted (0: none).",
        )
        m = table_of(Message)
        with self.engine.connect() as connection:
            for campaign, channel, status, n in connection.execute(
                select(m.c.campaign, m.c.channel, m.c.status, func.count()).group_by(
                    m.c.campaign, m.c.channel, m.c.status
                )
            ):
                messages.add_metric([campaign, channel, status], float(n))
            due = connection.execute(
                select(func.count()).where(
                    m.c.status == MessageStatus.QUEUED.value,
                    (m.c.next_attempt_at.is_(None)) | (m.c.next_attempt_at <= now),
                )
            ).scalar()
            depth.add_metric([], float(due or 0))
            alive = connection.execute(
                select(func.count()).where(
                    WorkerHeartbeat.heartbeat_at >= now - timedelta(seconds=self.live_seconds)
                )
            ).scalar()
            live.add_metric([], float(alive or 0))
            for name, in connection.execute(
                select(CampaignState.campaign).where(CampaignState.paused.is_(True))
            ):
                paused.add_metric([name], 1.0)
            for row in _latest_runs(connection):
                last_run.add_metric([row.campaign, row.status], row.slot.timestamp())
            for kind, version, metrics in connection.execute(
                select(ModelVersion.kind, ModelVersion.id, ModelVersion.metrics).where(
                    ModelVersion.active.is_(True)
                )
            ):
                for name, value in _numbers(metrics or {}):
                    model.add_metric([kind, str(version), name], value)
            a = table_of(CouponAnnouncement)
            pending, oldest = connection.execute(
                select(func.count(), func.min(a.c.created_at)).where(a.c.announced_at.is_(None))
            ).one()
            unannounced.add_metric([], float(pending or 0))
            oldest_unannounced.add_metric(
                [], max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
            )
        return [messages, depth, live, paused, last_run, model, unannounced, oldest_unannounced]


def _latest_runs(connection: Any) -> list[Any]:
    """The newest run row of each campaign (test sends excluded)."""
    newest = (
        select(CampaignRun.campaign, func.max(CampaignRun.slot).label("slot"))
        .where(~CampaignRun.campaign.like("%:test"))
        .group_by(CampaignRun.campaign)
        .subquery()
    )
    return list(
        connection.execute(
            select(
                CampaignRun.campaign, CampaignRun.slot, CampaignRun.status,
                CampaignRun.started_at, CampaignRun.finished_at, CampaignRun.error,
            ).join(
                newest,
                (CampaignRun.campaign == newest.c.campaign) & (CampaignRun.slot == newest.c.slot),
            ).order_by(CampaignRun.campaign)
        )
    )


def _numbers(metrics: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a metrics JSON, with dotted names (nested dicts flattened)."""
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            yield name, float(value)
        elif isinstance(value, dict):
            yield from _numbers(value, f"{name}.")


class MeteredChannel:
    """A channel that takes a token from a shared-rate bucket, times and counts each send.

    The bucket's rate is the channel's configured rate divided by the live senders
    (:mod:`campaign.daemon.workers` adjusts it), so N workers together stay within the
    provider's limit. The sender's own per-process bucket still applies but never binds.
    """

    def __init__(
        self, inner: Channel, bucket: TokenBucket | None, metrics: Metrics
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.medium = inner.medium
        self.max_batch = inner.max_batch
        self.bucket = bucket
        self.metrics = metrics

    async def send(self, messages: Sequence[OutgoingMessage], lane: int = 0) -> list[Outcome]:
        if self.bucket is not None:
            await self.bucket.acquire()
        started = time.perf_counter()
        outcomes = await self.inner.send(messages, lane)
        # The sender logs each outcome (delivery.message.*); this wrapper only counts.
        self.metrics.observe_send(self.name, time.perf_counter() - started, outcomes)
        return outcomes

    async def aclose(self) -> None:
        await self.inner.aclose()
