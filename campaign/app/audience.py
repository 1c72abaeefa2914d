"""The audience of a run for people: who a run would message and why, a page at a time.

The decisions are the planner's own (:func:`campaign.app.runs.preview`, read-only),
beside them the uplift of each customer when the campaign has an active uplift model
(:func:`campaign.app.uplift.score_uplift`), and their addresses masked unless the
caller may see them. The console's audience page is the one reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from campaign.common.contacts import mask_address
from campaign.common.errors import CampaignError
from campaign.config import Config

if TYPE_CHECKING:
    from campaign.planner.outcomes import PlannedMessage, RunReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Uplift:
    """The active uplift model's view of a campaign: its outcome (``converted``,
    ``revenue``...), the shop currency of revenue, and each customer's score."""

    outcome: str
    currency: str
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class AudiencePage:
    """One page of a run's audience.

    ``rows`` are the decisions of that page (columns of
    :class:`campaign.planner.outcomes.RunReport.decisions`, ``address`` masked unless
    asked otherwise) plus ``uplift``, ``uplift_segment``, ``uplift_reason`` (None
    without an uplift model) and ``picks`` (the products with their reasons, for rows
    whose message was rendered). ``matched`` counts the rows the search kept, of
    ``considered`` customers; ``message`` is the opened customer's rendered message.
    """

    report: RunReport
    rows: list[dict[str, Any]]
    page: int
    pages: int
    matched: int
    considered: int
    uplift: Uplift | None
    message: PlannedMessage | None
    masked: bool
    notes: list[str] = field(default_factory=list)


def campaign_uplift(engine: Engine, config: Config, campaign: str, as_of: datetime
                    ) -> tuple[Uplift | None, str | None]:
    """The campaign's uplift scores as of ``as_of`` (None without an active uplift
    model) and a note when the model exists but could not score. Read-only."""
    from campaign.uplift.registry import active_uplift_campaigns

    with engine.connect() as connection:
        if campaign not in active_uplift_campaigns(connection):
            return None, None
    from campaign.app.uplift import score_uplift

    try:
        _, outcome, scores = score_uplift(engine, config, campaign, as_of)
    except CampaignError as exc:
        log.warning("audience: the uplift model of %s did not score: %s", campaign, exc)
        return None, f"the uplift model of {campaign} did not score: {exc}"
    by_user = {
        str(row["user_id"]): {
            "uplift": float(row["uplift"]), "segment": row["segment"], "reason": row["reason"],
        }
        for row in scores.to_dict("records")
    }
    return Uplift(outcome, config.shop.currency, by_user), None


def _matches(row: dict[str, Any], needle: str, addresses: bool) -> bool:
    if needle in str(row["external_id"]).lower():
        return True
    # Searching by address would reveal masked addresses one guess at a time.
    return addresses and needle in str(row.get("address") or "").lower()


def audience_page(
    engine: Engine,
    config: Config,
    campaign: str,
    *,
    as_of: datetime,
    slot: datetime,
    now: Callable[[], datetime],
    page: int = 1,
    size: int = 50,
    search: str | None = None,
    user: str | None = None,
    addresses: bool = False,
) -> AudiencePage:
    """Page ``page`` (from 1) of ``size`` rows of who a run of ``campaign`` at ``slot``
    would message, highest risk first; ``search`` keeps the customers whose shop id
    (and, with ``addresses``, address) contains it; ``user`` opens that customer's
    rendered message. Nothing is written, no coupon reserved.

    Raises:
        NotFound, TemplateError, ConfigError, DatabaseError: as a preview.
    """
    from campaign.app.runs import preview

    needle = (search or "").strip().lower()
    # Rendering is the slow part: the first ``page * size`` messages without a search
    # (the page's rows are among them), none with one (each row still opens its own
    # message), only the opened customer's.
    limit = 1 if user else (0 if needle else page * size)
    report = preview(
        config.database_url(), config, campaign, as_of=as_of, slot=slot, now=now,
        limit=limit, user=user,
    )
    uplift, problem = campaign_uplift(engine, config, campaign, as_of)
    records: list[dict[str, Any]] = (
        [] if report.decisions.empty else report.decisions.to_dict("records"))
    considered = len(records)
    if needle:
        records = [r for r in records if _matches(r, needle, addresses)]
    pages = max(1, -(-len(records) // size))
    page = min(max(page, 1), pages)
    shown = records[(page - 1) * size: page * size]
    picks = {m.external_id: m.products for m in report.messages}
    for row in shown:
        score = uplift.scores.get(str(row["external_id"])) if uplift else None
        # The planner's own uplift (when it ranks by it) stands unless the model scored
        # this customer here too, with its reason.
        row["uplift"] = row.get("uplift") if score is None else score["uplift"]
        row["uplift_segment"] = row.get("uplift_segment") if score is None else score["segment"]
        row["uplift_reason"] = None if score is None else score["reason"]
        row["picks"] = picks.get(str(row["external_id"]), [])
        if not addresses:
            row["address"] = mask_address(row.get("address"))
    message = next((m for m in report.messages if m.external_id == user), None)
    if message is not None and not addresses:
        message = replace(message, address=mask_address(message.address))
    return AudiencePage(
        report=report, rows=shown, page=page, pages=pages, matched=len(records),
        considered=considered, uplift=uplift, message=message, masked=not addresses,
        notes=[*report.notes, *([problem] if problem else [])],
    )
