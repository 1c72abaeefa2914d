"""Local sink for the demo and for tests: one JSON line per message, appended and fsynced."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from campaign.common.errors import TransientDeliveryError
from campaign.delivery.channels.base import Outcome, OutgoingMessage, SendResult


class FileChannel:
    """Appends each message as a JSON line to ``<path>/<channel>.jsonl``.

    A batch is written with one ``write`` and one ``fsync``, so a message counts as
    accepted only once it is on disk. The provider message id is ``file:<message id>``.
    """

    max_batch = 500

    def __init__(self, name: str, *, medium: str, path: Path) -> None:
        self.name = name
        self.medium = medium
        self.path = path if path.suffix == ".jsonl" else path / f"{name}.jsonl"
        self._lock = threading.Lock()

    def _append(self, lines: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())

    async def send(self, messages: Sequence[OutgoingMessage], lane: int = 0) -> list[Outcome]:
        """Append every message; an unwritable folder fails them all (retried)."""
        lines = "".join(
            json.dumps(
                {
                    "message_id": m.message_id,
                    "idempotency_key": m.idempotency_key,
                    "campaign": m.campaign,
                    "variant": m.variant,
                    "channel": m.channel,
                    "medium": m.medium,
                    "to": m.to,
                    "subject": m.subject,
                    "text": m.text,
                    "html": m.html,
                    "coupon_code": m.coupon_code,
                    "headers": m.email_headers() if m.medium == "email" else {},
                    "test": m.is_test,
                },
                ensure_ascii=False,
            )
            + "\n"
            for m in messages
        )
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as exc:
            error = TransientDeliveryError(self.name, f"cannot write {self.path}: {exc}")
            return [error for _ in messages]
        return [SendResult(m.message_id, f"file:{m.message_id}") for m in messages]

    async def aclose(self) -> None:
        """Nothing is kept open between batches."""
