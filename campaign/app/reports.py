"""The campaign report: its figures, and the HTML page beside them when asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import Connection, Engine

from campaign.config import Config

if TYPE_CHECKING:
    import pandas as pd

    from campaign.measurement.reports.data import CampaignReport
    from campaign.measurement.reports.tables import Table

T = TypeVar("T")

@dataclass(frozen=True)
class BuiltReport:
    """The campaign report (None when only the model history was asked for), the model
    history (None unless asked for) and where the HTML page went (None: not asked)."""

    report: CampaignReport | None
    history: pd.DataFrame | None
    html_path: Path | None


def build_report(
    connection: Connection,
    config: Config,
    *,
    now: datetime,
    campaign: str | None = None,
    html: Path | None = None,
    models_only: bool = False,
) -> BuiltReport:
    """The report at ``now`` (or, with ``models_only``, every model version's metrics)
    and, with ``html``, the HTML page written there. Reads the database only."""
    from campaign.measurement.reports.data import campaign_report, model_history

    report = history = None
    if models_only:
        history = model_history(connection)
    else:
        report = campaign_report(connection, config, now=now, campaign=campaign)
        from campaign.uplift.report import load_targeting

        report.targeting = load_targeting(connection, campaign)
    path = None
    if html is not None:
        from campaign.app.model_view import uplift_tree_rules
        from campaign.measurement.reports.html import write_html_report

        uplift_rules = [
            (f"The uplift tree of {t.campaign} as rules (version {t.version}, "
             f"outcome {t.outcome}), largest uplift first", t.rules)
            for t in uplift_tree_rules(connection, config, campaign) if t.rules]
        path = write_html_report(
            connection, config, html, now=now, campaign=campaign, report=report,
            uplift_rules=uplift_rules,
        )
    return BuiltReport(report, history, path)


def report_html(
    engine: Engine, config: Config, *, now: datetime, campaign: str | None = None
) -> str:
    """The report's self-contained HTML page as text (what ``campaign report --html``
    writes), for the console's results page; reads the database only."""
    import tempfile

    now = _to_the_minute(now)

    def compute() -> str:
        with tempfile.TemporaryDirectory(prefix="campaign-report-") as folder:
            with engine.connect() as connection:
                built = build_report(connection, config, now=now, campaign=campaign,
                                     html=Path(folder) / "report.html")
            assert built.html_path is not None
            return built.html_path.read_text(encoding="utf-8")

    return _cached_report(engine, config, ("html", campaign, now), compute)


def _to_the_minute(now: datetime) -> datetime:
    """The console's reports are as of the minute, so that views within one minute
    share a computed report (:mod:`campaign.app.report_cache`)."""
    return now.replace(second=0, microsecond=0)


def _cached_report(engine: Engine, config: Config, question: tuple[object, ...],
                   compute: Callable[[], T]) -> T:
    """``compute()``, or the same report computed before on unchanged data."""
    from campaign.app.report_cache import cached, data_fingerprint, database_identity

    with engine.connect() as connection:
        database = database_identity(connection)
        if database is None:  # in memory: nothing to share it with
            return compute()
        key = (database, config.model_dump_json(), *question, data_fingerprint(connection))
    return cached(key, compute)


@dataclass(frozen=True)
class ReportTables:
    """The report's tables (:mod:`campaign.measurement.reports.tables`) at ``now``, the
    shop currency they show money in, the report's notes, and its charts (inline SVG:
    the funnels and the uplift with its interval)."""

    now: datetime
    currency: str
    tables: list[Table]
    notes: list[str]
    charts: list[str] = field(default_factory=list)


def report_tables_at(
    engine: Engine, config: Config, *, now: datetime, campaign: str | None = None
) -> ReportTables:
    """The tables of the report at ``now`` (all campaigns, or one), for the console's
    results page and its CSV downloads; the same tables ``campaign report --html``
    draws. Reads the database only.

    Raises:
        NotFound: ``campaign`` is not configured and has no messages.
    """
    from campaign.measurement.reports.data import campaign_report, model_history
    from campaign.measurement.reports.report_charts import funnel_charts, uplift_chart
    from campaign.measurement.reports.tables import report_tables
    from campaign.uplift.report import load_targeting

    now = _to_the_minute(now)

    def compute() -> ReportTables:
        with engine.connect() as connection:
            report = campaign_report(connection, config, now=now, campaign=campaign)
            report.targeting = load_targeting(connection, campaign)
            history = model_history(connection)
        charts = [*funnel_charts(report.funnel), uplift_chart(report.uplift)]
        return ReportTables(now, config.shop.currency, report_tables(report, history),
                            list(report.notes), [c for c in charts if c])

    return _cached_report(engine, config, ("tables", campaign, now), compute)
