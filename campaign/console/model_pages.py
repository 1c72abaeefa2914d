"""The models page (analysts, operators): the active churn tree and each campaign's
active uplift tree as text rules, and every version over time.

The rules come from :func:`campaign.app.model_view.models_view` (the same leaves the
customers' reasons are read from); the version tables are drawn by
:func:`campaign.measurement.reports.tables.table_html`, like the results tables.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from campaign.app.model_view import models_view
from campaign.config import Config
from campaign.console import i18n
from campaign.console.pages import language_of, render
from campaign.db.console import Account
from campaign.measurement.reports.report_charts import churn_models_chart, uplift_models_chart
from campaign.measurement.reports.tables import (
    model_versions_table,
    table_html,
    uplift_versions_table,
)


class ModelPages:
    """The ``/models`` route."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine

    async def page(self, request: Request, account: Account) -> Response:
        """The trees as rules, then the version tables."""
        view = await run_in_threadpool(models_view, self.engine, self.config)
        language = language_of(request)
        translate = i18n.gettext_for(language)
        locale = i18n.LANGUAGES[language][0]
        tables = [
            # Shown unescaped (|safe): table_html escapes every label and cell itself.
            table_html(t, currency=self.config.shop.currency, locale=locale,
                       translate=translate)
            for t, frame in ((model_versions_table(view.churn_history), view.churn_history),
                             (uplift_versions_table(view.uplift_history), view.uplift_history))
            if not frame.empty
        ]
        # Drawn unescaped (|safe): the charts escape every label themselves.
        charts = [c for c in (churn_models_chart(view.churn_history),
                              uplift_models_chart(view.uplift_history)) if c]
        return render(request, "models.html", churn=view.churn, uplift=view.uplift,
                      tables=tables, charts=charts)
