"""The outbox writer: a run's ``messages`` and coupons, in bulk, in the run's transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from campaign.common.errors import CampaignError
from campaign.config import CampaignConfig
from campaign.coupons.store import RESERVE_ATTEMPTS
from campaign.db.models import (
    Message,
    MessageStatus,
)
from campaign.planner import content
from campaign.planner import rows as bulk
from campaign.planner.outcomes import slot_key

log = logging.getLogger("campaign.planner.run")


class OutboxWriter:
    """Writes a run's ``messages`` (and their coupons) in bulk, chunk by chunk.

    Rendered (queued) messages are written as each chunk is rendered, in the run's
    order, and their coupons right after; :meth:`write_rest` then writes the rows of
    everyone else (held out, skipped) in frame order. All in the run's transaction.
    """

    def __init__(
        self,
        connection: Connection,
        campaign: CampaignConfig,
        frame: pd.DataFrame,
        picks: Mapping[int, list[content.Pick]],
        run_id: int,
        slot: datetime,
        planned_at: datetime,
        expiry_hours: float,
    ) -> None:
        self.connection = connection
        self.campaign = campaign
        self.frame = frame
        self.picks = picks
        self.run_id = run_id
        self.planned_at = planned_at
        self.at = bulk.db_time(connection, planned_at)
        self.expires = bulk.db_time(connection, planned_at + timedelta(hours=expiry_hours))
        self.no = bulk.db_bool(connection, False)
        # idempotency_key(campaign, slot, user_id, channel), formatted once per run.
        self.key_prefix = f"{campaign.name}/{slot_key(slot)}/"
        self.user_ids = [int(u) for u in frame["user_id"].tolist()]
        self.channels = frame["channel"].tolist()
        # A missing text is NaN in a frame; the databases store NULL (MySQL refuses NaN).
        self.variants = _texts(frame["variant"].tolist())
        self.templates = _texts(frame["template"].tolist())
        # Each randomised row's own probability of treatment (NaN -> NULL: never
        # randomised) and its learning-share flag, for the uplift model's data.
        self.p_treatment = [
            float(p) if p == p else None
            for p in (frame["p_treatment"].tolist() if "p_treatment" in frame
                      else [math.nan] * len(frame))
        ]
        self.learning = [
            bulk.db_bool(connection, bool(flag))
            for flag in (frame["learning"].tolist() if "learning" in frame
                         else [False] * len(frame))
        ]
        self.last_id = 0

    def write_rendered(
        self,
        positions: Sequence[int],
        rendered: dict[int, content.Rendered],
        coupons: dict[int, content.CouponOffer],
        redraw: Callable[[int], None],
    ) -> None:
        """Insert the queued messages at ``positions`` (frame rows), then their coupons.

        A coupon code that collides with a stored one (or another of the run) is drawn
        again (``redraw`` re-renders that message) and its message row updated, until
        every code is new; a code is never reused.

        Raises:
            CampaignError: still colliding after ``RESERVE_ATTEMPTS`` draws.
        """
        if not positions:
            return
        queued = MessageStatus.QUEUED.value
        records = []
        for i in positions:
            message = rendered[i]
            user_id = self.user_ids[i]
            coupon = coupons.get(i)
            records.append((
                self.run_id, user_id, self.campaign.name, self.channels[i], self.variants[i],
                self.templates[i], message.subject, message.html or message.text, message.text,
                content.stored_products_json(self.picks.get(user_id, ())),
                coupon.code if coupon else None, None, self.no,
                f"{self.key_prefix}{user_id}/{self.channels[i]}", queued, None, 0,
                self.at, self.expires, None, self.at, self.at,
                self.p_treatment[i], self.learning[i],
            ))
        bulk.insert_rows(self.connection, "messages", bulk.MESSAGE_COLUMNS, records)
        # One message per user per run: read the new ids back in one query rather than
        # RETURNING, which SQLite can only honour row by row in parameter order.
        ids = bulk.new_message_ids(self.connection, self.run_id, self.last_id)
        self.last_id = max(ids.values(), default=self.last_id)
        with_coupon = [i for i in positions if i in coupons]
        if with_coupon:
            self._reserve_coupons(with_coupon, ids, rendered, coupons, redraw)

    def write_rest(self, written: Mapping[int, Any]) -> None:
        """Insert the rows of every frame row not in ``written`` (held out, skipped)."""
        held = MessageStatus.HELD_OUT.value
        columns = zip(
            self.frame["status"].tolist(), self.frame["skip_reason"].tolist(),
            self.frame["last_error"].tolist(), strict=True,
        )
        records = []
        for i, (status, reason, error) in enumerate(columns):
            if i in written:
                continue
            user_id = self.user_ids[i]
            records.append((
                self.run_id, user_id, self.campaign.name, self.channels[i],
                None if status == held else self.variants[i], self.templates[i],
                None, None, None, "[]", None, None, self.no,
                f"{self.key_prefix}{user_id}/{self.channels[i]}", status,
                reason if isinstance(reason, str) else None, 0, None, None,
                error if isinstance(error, str) else None,
                self.at, self.at, self.p_treatment[i], self.learning[i],
            ))
        bulk.insert_rows(self.connection, "messages", bulk.MESSAGE_COLUMNS, records)

    def _reserve_coupons(
        self,
        positions: Sequence[int],
        ids: Mapping[int, int],
        rendered: dict[int, content.Rendered],
        coupons: dict[int, content.CouponOffer],
        redraw: Callable[[int], None],
    ) -> None:
        connection = self.connection
        issued = bulk.db_time(connection, self.planned_at)
        expiry: dict[datetime, Any] = {}

        def row(i: int) -> tuple[Any, ...]:
            coupon = coupons[i]
            expires = expiry.get(coupon.expires_at)
            if expires is None:
                expires = expiry[coupon.expires_at] = bulk.db_time(connection, coupon.expires_at)
            user_id = self.user_ids[i]
            return (coupon.code, user_id, ids[user_id], self.campaign.name, coupon.percent_off,
                    coupon.min_order_cents, issued, expires)

        batch = [row(i) for i in positions]
        for _ in range(RESERVE_ATTEMPTS):
            clashes = bulk.insert_coupons(connection, batch)
            if not clashes:
                return
            log.warning("campaign.run.coupon_collision campaign=%s codes=%d",
                        self.campaign.name, len(clashes))
            changed = [positions[at] for at in sorted(clashes)]
            for i in changed:
                redraw(i)
            for at in clashes:
                batch[at] = row(positions[at])
            connection.execute(
                update(Message)
                .where(Message.id == bindparam("b_id"))
                .values(
                    subject=bindparam("b_subject"), body=bindparam("b_body"),
                    text_body=bindparam("b_text"), coupon_code=bindparam("b_code"),
                ),
                [
                    {
                        "b_id": ids[self.user_ids[i]],
                        "b_subject": rendered[i].subject,
                        "b_body": rendered[i].html or rendered[i].text,
                        "b_text": rendered[i].text,
                        "b_code": coupons[i].code,
                    }
                    for i in changed
                ],
            )
        raise CampaignError(
            f"campaign {self.campaign.name!r}: coupon codes still collide after "
            f"{RESERVE_ATTEMPTS} draws (is the code generator broken?)"
        )


def insert_messages(connection: Connection, records: Sequence[dict[str, Any]]) -> None:
    """One executemany (batched multi-row INSERTs) of outbox rows (test sends)."""
    if records:
        connection.execute(insert(Message), list(records))


def _texts(values: list[Any]) -> list[str | None]:
    """``values`` with every missing (non-text) entry as None."""
    return [value if isinstance(value, str) else None for value in values]
