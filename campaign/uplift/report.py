"""I/O: what targeting by uplift gains, per campaign, as the report's frames. Read-only.

The figures are computed at training on the held-back rows
(:mod:`campaign.uplift.targeting`) and stored in the active version's metrics; this
turns them into frames for ``campaign report`` (text, JSON/CSV, HTML) and the console.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaign.db.base import table_of
from campaign.db.models import ModelVersion
from campaign.uplift.registry import UPLIFT


@dataclass(frozen=True)
class TargetingReport:
    """One campaign's active uplift model measured against risk targeting.

    ``curve``: ``share`` and ``uplift``/``risk``/``random`` incremental outcomes per
    1,000 customers; ``deciles``: one row per decile of predicted uplift; ``gain``: per
    top share and outcome, per 1,000 messages (see campaign.uplift.targeting).
    """

    campaign: str
    outcome: str
    version: int
    chosen: str
    rows: int
    curve: pd.DataFrame
    deciles: pd.DataFrame
    gain: pd.DataFrame


def load_targeting(connection: Connection, campaign: str | None = None
                   ) -> list[TargetingReport]:
    """The active uplift versions' targeting figures (of ``campaign``, else all),
    by campaign name; versions trained before these figures existed are left out."""
    table = table_of(ModelVersion)
    rows = connection.execute(
        select(table.c.id, table.c.params, table.c.metrics)
        .where(table.c.kind == UPLIFT, table.c.active.is_(True))
        .order_by(table.c.id)
    ).all()
    found = []
    for row in rows:
        params, metrics = row.params or {}, row.metrics or {}
        name = str(params.get("campaign"))
        targeting = metrics.get("targeting") or {}
        if (campaign is not None and name != campaign) or not targeting.get("gain"):
            continue
        found.append(TargetingReport(
            campaign=name, outcome=str(params.get("outcome")), version=int(row.id),
            chosen=str(metrics.get("chosen")), rows=int(targeting.get("rows", 0)),
            curve=pd.DataFrame(targeting.get("curve", [])),
            deciles=pd.DataFrame(targeting.get("deciles", [])),
            gain=pd.DataFrame(targeting.get("gain", [])),
        ))
    return sorted(found, key=lambda report: report.campaign)


def uplift_history(connection: Connection) -> pd.DataFrame:
    """Every uplift model version, oldest first: ``version, campaign, trained_at,
    as_of, active, outcome, chosen, qini`` (the chosen model's Qini coefficient on the
    held-back experiment rows) and ``risk_qini`` (risk targeting's, on the same rows);
    NaN where a version stored none."""
    table = table_of(ModelVersion)
    rows = connection.execute(
        select(table.c.id, table.c.trained_at, table.c.as_of, table.c.active,
               table.c.params, table.c.metrics)
        .where(table.c.kind == UPLIFT).order_by(table.c.as_of, table.c.id)
    ).all()
    out = []
    for row in rows:
        params, metrics = row.params or {}, row.metrics or {}
        validation = metrics.get("validation") or {}
        chosen = str(metrics.get("chosen"))
        qini = (validation.get(chosen) or {}).get("qini")
        risk = (validation.get("risk (recency)") or {}).get("qini")
        out.append({
            "version": int(row.id), "campaign": str(params.get("campaign")),
            "trained_at": row.trained_at, "as_of": row.as_of, "active": bool(row.active),
            "outcome": str(params.get("outcome")), "chosen": chosen,
            "qini": float("nan") if qini is None else float(qini),
            "risk_qini": float("nan") if risk is None else float(risk),
        })
    return pd.DataFrame(out, columns=["version", "campaign", "trained_at", "as_of", "active",
                                      "outcome", "chosen", "qini", "risk_qini"])
