"""Group-commit writer: concurrent requests share one database transaction.

Each webhook request hands its events to :meth:`BatchWriter.write` and waits until they
are committed, so a 2xx always means "stored" and a crash before the commit makes the
provider retry. One writer thread drains the queue: while it commits one batch, the
next requests queue up and go together in the next transaction. Throughput then
scales with concurrency instead of with commits per second, SQLite never sees two
writers of ours at once, and a lone request is written at once (no waiting window).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from campaign.responses.events import SUPPRESSING, InboundEvent
from campaign.responses.recording import RecordResult, record_events

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    events: Sequence[InboundEvent]
    future: asyncio.Future[RecordResult]


class BatchWriter:
    """Writes batches of inbound events through one worker thread (see module doc).

    ``max_events`` bounds one transaction; ``clock`` gives ``received_at`` (UTC). On
    PostgreSQL, batches without a suppressing event commit asynchronously unless
    ``durable_tracking`` (see docs/responses.md).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime],
        media: Mapping[str, str],
        max_events: int = 1000,
        durable_tracking: bool = False,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._media = dict(media)
        self._max_events = max_events
        self._durable_tracking = durable_tracking
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-writer")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the drain task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def write(self, events: Sequence[InboundEvent]) -> RecordResult:
        """Store ``events``; returns once they are committed.

        Raises:
            Exception: whatever the database raised for this request's events.
        """
        if not events:
            return RecordResult()
        future: asyncio.Future[RecordResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(events, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first.events)
            while size < self._max_events and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.events)
            try:
                results = await loop.run_in_executor(self._executor, self._write, batch)
            except Exception:
                # One bad request must not fail the others that shared its transaction.
                log.warning(
                    "responses batch of %d requests failed; retrying one by one",
                    len(batch),
                    exc_info=True,
                )
                for pending in batch:
                    try:
                        (result,) = await loop.run_in_executor(
                            self._executor, self._write, [pending]
                        )
                    except Exception as exc:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    else:
                        if not pending.future.done():
                            pending.future.set_result(result)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    def _write(self, batch: Sequence[_Pending]) -> list[RecordResult]:
        events = [event for pending in batch for event in pending.events]
        with self._engine.begin() as connection:
            if (
                not self._durable_tracking
                and connection.dialect.name == "postgresql"
                and not any(event.type in SUPPRESSING for event in events)
            ):
                # Opens, clicks and deliveries do not wait for the WAL flush (one fsync,
                # ~6 ms on a plain disk, per commit); a database crash may lose the last
                # fraction of a second of them. Suppressing events always wait.
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            total = record_events(connection, events, now=self._clock(), media=self._media)
        out = []
        start = 0
        for pending in batch:
            statuses = total.statuses[start : start + len(pending.events)]
            start += len(pending.events)
            out.append(
                RecordResult(
                    stored=sum(s != "duplicate" for s in statuses),
                    duplicates=statuses.count("duplicate"),
                    unmatched=statuses.count("unmatched"),
                    suppressions=total.suppressions if len(batch) == 1 else 0,
                    statuses=statuses,
                )
            )
        return out
