"""The daemon process: leader election, scheduler, sender, servers, and two-stage shutdown.

``campaign daemon`` runs every part; ``campaign worker`` only the sender (and health).

Shutdown is two-stage [rq]. The first SIGTERM/SIGINT stops the scheduler (a run in
progress finishes its transaction), stops claiming, lets in-flight sends finish and
releases claimed-but-unsent messages; that must end within
``[daemon] shutdown_grace_seconds``, else the process exits anyway. A second signal
exits at once: leases then expire and another sender takes the rows, re-sending any
whose outcome is unknown with the same idempotency key.

SIGHUP reloads the configuration without a restart: campaign schedules and
definitions, retraining and ingest jobs (the scheduler's jobs are replaced), and the
sender's delivery and channel settings (the sender finishes its in-flight sends and
a new one starts). The database URL, the health and response servers' addresses and
the log format are read at start only: changing them logs that a restart is needed.
A configuration that does not load is refused with one error line and the old one
stays in force.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError, ConfigError
from campaign.config import Config
from campaign.daemon.health import HealthServer, health_report
from campaign.daemon.jobs import JobContext
from campaign.daemon.leader import Leadership, make_leadership
from campaign.daemon.logging import log_event
from campaign.daemon.metrics import Metrics
from campaign.daemon.scheduler import build_scheduler, reschedule
from campaign.daemon.workers import LIVE_BEATS, SenderService

log = logging.getLogger("campaign.daemon")

EXIT_OK = 0
# Shutdown did not finish within the grace time (or a second signal): leases expire.
EXIT_FORCED = 1

# A fresh configuration and its resolved ingest-query URLs (``[daemon.ingest.queries]``).
ConfigLoader = Callable[[], tuple[Config, Mapping[int, str]]]

# Read once at start: a reload that changes them says a restart is needed.
_START_ONLY = (
    ("database", lambda c: c.database),
    ("daemon.health_host", lambda c: c.daemon.health_host),
    ("daemon.health_port", lambda c: c.daemon.health_port),
    ("daemon.serve_responses", lambda c: c.daemon.serve_responses),
    ("daemon.log_format", lambda c: c.daemon.log_format),
    ("daemon.log_level", lambda c: c.daemon.log_level),
    ("server", lambda c: c.server),
)


class Daemon:
    """One daemon (``role="daemon"``) or worker (``role="worker"``) process.

    ``clock`` (aware UTC) stamps everything written; the scheduler's own timing uses
    the wall clock. :meth:`run` blocks until :meth:`request_stop` (or a signal) and
    returns the exit code.

    Raises (from :meth:`run`, before anything starts):
        AlreadyRunning: SQLite, and another daemon runs on the same file.
    """

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        clock: Callable[[], datetime],
        role: str = "daemon",
        query_urls: Mapping[int, str] | None = None,
        serve_responses: bool | None = None,
        reload_config: ConfigLoader | None = None,
    ) -> None:
        self.engine = engine
        self.reload_config = reload_config
        self.config = config
        self.clock = clock
        self.role = role
        self.query_urls = dict(query_urls or {})
        if serve_responses is None:
            serve_responses = config.daemon.serve_responses or bool(
                getattr(config.server, "enabled", False)
            )
        self.serve_responses = role == "daemon" and serve_responses
        self.metrics = Metrics(
            engine, clock=clock, live_seconds=LIVE_BEATS * config.daemon.heartbeat_seconds
        )
        self.stop_event = threading.Event()
        # Wakes the supervising loop early: a stop, or a SIGHUP to reload.
        self._wake = threading.Event()
        self._reload_requested = threading.Event()
        self._signals = 0
        self.started_at = clock()
        self.leadership: Leadership | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.sender: SenderService | None = None
        self.health: HealthServer | None = None
        self._uvicorn: Any = None
        self._uvicorn_thread: threading.Thread | None = None

    # -- signals ----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: graceful stop; second: exit now (main thread only)."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                log_event(log, "daemon.exit.forced", logging.WARNING, signal=signum)
                os._exit(EXIT_FORCED)
            log_event(log, "daemon.stopping", signal=signal.Signals(signum).name,
                      grace_seconds=self.config.daemon.shutdown_grace_seconds)
            self.request_stop()

        def hangup(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, handle)
        signal.signal(signal.SIGHUP, hangup)

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down gracefully (what the first signal does)."""
        self.stop_event.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Ask :meth:`run` to reload the configuration (what SIGHUP does)."""
        self._reload_requested.set()
        self._wake.set()

    def reload(self) -> bool:
        """Load the configuration again and put it in force; False (old one kept) when
        it does not load. Called by :meth:`run`'s loop, never from a signal handler."""
        if self.reload_config is None:
            log_event(log, "daemon.reload.unavailable", logging.WARNING)
            return False
        try:
            config, query_urls = self.reload_config()
        except CampaignError as exc:
            log_event(log, "daemon.reload.failed", logging.ERROR,
                      reason=" | ".join(str(exc).splitlines()),
                      kept=self.config.source)
            return False
        old = self.config
        restart = [name for name, read in _START_ONLY if read(old) != read(config)]
        if restart:
            log_event(log, "daemon.reload.needs_restart", logging.WARNING,
                      keys=",".join(restart))
        self.config, self.query_urls = config, dict(query_urls)
        if self.scheduler is not None:
            ctx = JobContext(self.engine, config, self.clock, self.metrics)
            reschedule(self.scheduler, ctx, query_urls=self.query_urls)
        if self.sender is not None and (
            old.delivery != config.delivery or old.channels != config.channels
        ):
            self._restart_sender()
        log_event(log, "daemon.reload.done", source=config.source,
                  campaigns=len(config.campaigns))
        self._log_schedule()
        return True

    def _restart_sender(self) -> None:
        old = self.sender
        if old is not None:
            old.stop()
            old.join(self.config.daemon.shutdown_grace_seconds)
        self.sender = SenderService(
            self.engine, self.config, clock=self.clock, metrics=self.metrics, kind=self.role
        )
        self.sender.start()
        log_event(log, "daemon.sender.restarted", reason="config reloaded")

    def _log_schedule(self) -> None:
        """One line per scheduled job: what runs when (after a start or a reload)."""
        if self.scheduler is None:
            return
        for job in sorted(self.scheduler.get_jobs(), key=lambda j: j.id):
            when = job.next_run_time.isoformat() if job.next_run_time else "paused"
            log_event(log, "daemon.schedule", job=job.id, trigger=str(job.trigger),
                      next_run=when)

    # -- run --------------------------------------------------------------------------

    def run(self) -> int:
        """Start every part, supervise until asked to stop, shut down; the exit code."""
        if self.role == "daemon":
            # On SQLite this refuses a second daemon before anything else starts.
            self.leadership = make_leadership(self.engine)
        try:
            self._start_health()
        except BaseException:
            if self.leadership is not None:
                self.leadership.release()
            raise
        log_event(log, "daemon.started", role=self.role, pid=os.getpid(),
                  campaigns=len(self.config.campaigns))
        self.sender = SenderService(
            self.engine, self.config, clock=self.clock, metrics=self.metrics, kind=self.role
        )
        self.sender.start()
        if self.serve_responses:
            self._start_responses()
        try:
            while not self.stop_event.is_set():
                self._wake.clear()  # before the checks: a signal after them wakes the wait
                self._supervise_leadership()
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
                if self.sender.error is not None or not self.sender.alive():
                    log.error("daemon.sender.dead: stopping so the service manager restarts us")
                    self.stop_event.set()
                    break
                self._wake.wait(self.config.daemon.leader_poll_seconds)
        finally:
            code = self._shutdown()
        return code

    def _supervise_leadership(self) -> None:
        if self.leadership is None:
            return
        leader = self.leadership.poll()
        if leader and self.scheduler is None:
            ctx = JobContext(self.engine, self.config, self.clock, self.metrics)
            # Catch up at once: run (or record as missed) what no leader ran.
            self.scheduler = build_scheduler(
                ctx, query_urls=self.query_urls, catch_up_at=self.clock()
            )
            self.scheduler.start()
            self.metrics.is_leader.set(1)
            log_event(log, "daemon.leader.acquired", pid=os.getpid(),
                      jobs=len(self.scheduler.get_jobs()))
            self._log_schedule()
        elif not leader and self.scheduler is not None:
            self._stop_scheduler()
            log_event(log, "daemon.leader.lost", logging.WARNING, pid=os.getpid())

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=False)
            except Exception:
                log.warning("daemon.scheduler.shutdown_failed", exc_info=True)
            self.scheduler = None
        self.metrics.is_leader.set(0)

    def _health(self) -> tuple[int, dict[str, Any]]:
        return health_report(
            self.engine,
            role=self.role,
            leader=bool(self.leadership is not None and self.scheduler is not None),
            scheduler_running=bool(self.scheduler is not None and self.scheduler.running),
            sender_alive=self.sender.alive() if self.sender is not None else None,
            started_at=self.started_at,
            now=self.clock(),
        )

    def _start_health(self) -> None:
        port = self.config.daemon.health_port
        if port == 0:
            return
        host = self.config.daemon.health_host
        try:
            self.health = HealthServer(host, port, report=self._health, metrics=self.metrics)
        except OSError as exc:
            raise ConfigError(
                self.config.source, "daemon.health_port",
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another daemon or "
                "program uses it; stop it, or choose another port with --health-port N or "
                "[daemon] health_port (0 turns health and metrics off)",
            ) from None
        self.health.start()
        log_event(log, "daemon.health.listening", host=self.config.daemon.health_host,
                  port=self.health.port)

    def _start_responses(self) -> None:
        import uvicorn

        from campaign.responses.app import create_app

        server = self.config.server
        app = create_app(self.config, self.engine, clock=self.clock)
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                app, host=server.host, port=server.port, log_level="warning",
                access_log=False, timeout_keep_alive=30, server_header=False,
            )
        )
        # Not the main thread: uvicorn leaves signal handling to us.
        self._uvicorn_thread = threading.Thread(
            target=self._uvicorn.run, name="responses", daemon=True
        )
        self._uvicorn_thread.start()
        log_event(log, "responses.server.started", host=server.host, port=server.port)

    def _shutdown(self) -> int:
        deadline = time.monotonic() + self.config.daemon.shutdown_grace_seconds
        self._stop_scheduler()
        code = EXIT_OK
        if self.sender is not None:
            self.sender.stop()
            if not self.sender.join(max(0.0, deadline - time.monotonic())):
                log.warning("daemon.shutdown.timeout: in-flight sends did not finish; "
                            "their leases will expire and another sender takes them")
                code = EXIT_FORCED
        if self._uvicorn is not None and self._uvicorn_thread is not None:
            self._uvicorn.should_exit = True
            self._uvicorn_thread.join(max(0.1, deadline - time.monotonic()))
        if self.health is not None:
            self.health.stop()
        # A scheduled run still planning holds its own transaction: give it the rest
        # of the grace time, then leave (the transaction rolls back, the slot stays
        # unplanned and the next leader's catch-up decides about it).
        while _busy_job_threads() and time.monotonic() < deadline:
            time.sleep(0.1)
        if _busy_job_threads():
            code = EXIT_FORCED
        if self.leadership is not None:
            self.leadership.release()
        log_event(log, "daemon.stopped", role=self.role, code=code)
        return code


def _busy_job_threads() -> bool:
    """Whether a scheduler job thread is still running (APScheduler's pool threads)."""
    return any(
        t.is_alive() and t.name.startswith("ThreadPoolExecutor") and not t.daemon
        for t in threading.enumerate()
        if t is not threading.current_thread()
    )
