"""The results pages: the report's tables for people, each one's CSV, and the whole
page of ``campaign report --html`` (with its charts) to read or download.

The tables come from :func:`campaign.app.reports.report_tables_at`, drawn by the same
:func:`campaign.measurement.reports.tables.table_html` as the HTML report, in the
reader's language and number style.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from campaign.app.reports import report_html, report_tables_at
from campaign.common.errors import CampaignError
from campaign.config import Config
from campaign.console import i18n
from campaign.console.pages import SECURITY_HEADERS, language_of, render
from campaign.db.console import Account

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class ResultPages:
    """The results routes; ``clock`` returns aware UTC now."""

    def __init__(self, config: Config, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock

    def _as_of(self) -> datetime:
        return self.config.clock.as_of or self.clock()

    async def page(self, request: Request, account: Account) -> Response:
        """The tables (default), or with ``view=page`` the HTML report's own page;
        ``download=1`` sends that page as a file."""
        campaign = request.query_params.get("campaign") or None
        as_of = self._as_of()
        whole = request.query_params.get("view") == "page"
        download = bool(request.query_params.get("download"))
        try:
            if whole or download:
                html = await run_in_threadpool(
                    lambda: report_html(self.engine, self.config, now=as_of, campaign=campaign)
                )
            else:
                found = await run_in_threadpool(
                    lambda: report_tables_at(
                        self.engine, self.config, now=as_of, campaign=campaign)
                )
        except CampaignError as exc:
            return render(request, "error.html", 404, message=str(exc))
        names = [c.name for c in self.config.campaigns]
        if download:
            return Response(html, media_type="text/html", headers={
                "Content-Disposition": 'attachment; filename="report.html"',
                "Cache-Control": "no-store",
            })
        if whole:
            return render(request, "report.html", html=html, campaign=campaign, as_of=as_of,
                          campaign_names=names, tables=None)
        from campaign.measurement.reports.tables import table_html

        language = language_of(request)
        translate = i18n.gettext_for(language)
        locale = i18n.LANGUAGES[language][0]
        drawn = [
            # Shown unescaped (|safe): table_html escapes every label and cell itself.
            table_html(
                t, currency=found.currency, locale=locale, translate=translate,
                csv_href="/report/csv?" + urlencode(
                    {"table": t.name, **({"campaign": campaign} if campaign else {})}),
            )
            for t in found.tables
        ]
        return render(request, "report.html", tables=drawn, notes=found.notes,
                      charts=found.charts,
                      campaign=campaign, as_of=as_of, campaign_names=names,
                      currency=found.currency)

    async def csv(self, request: Request, account: Account) -> Response:
        """One table of the report as a CSV file (``table=uplift|revenue|funnel|...``)."""
        from campaign.measurement.reports.tables import table_csv

        campaign = request.query_params.get("campaign") or None
        name = request.query_params.get("table", "")
        try:
            found = await run_in_threadpool(
                lambda: report_tables_at(
                    self.engine, self.config, now=self._as_of(), campaign=campaign)
            )
        except CampaignError as exc:
            return render(request, "error.html", 404, message=str(exc))
        table = next((t for t in found.tables if t.name == name), None)
        if table is None:
            known = ", ".join(t.name for t in found.tables) or "none yet"
            _ = i18n.gettext_for(language_of(request))
            return render(request, "error.html", 404, message=_(
                "no table %(name)s in this report (there are: %(known)s)")
                % {"name": name, "known": known})
        filename = _SAFE_NAME.sub("-", f"report-{campaign or 'all'}-{name}-{found.now:%Y%m%d}")
        return Response(
            table_csv(table, currency=found.currency), media_type="text/csv; charset=utf-8",
            headers={**SECURITY_HEADERS,
                     "Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
