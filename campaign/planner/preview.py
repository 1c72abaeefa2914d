"""Previews: the planner's own code with every write switched off.

:func:`preview_run` calls :func:`campaign.planner.run.plan_run` with ``dry_run=True``
(no run row, no messages, no coupons). :func:`open_read_only` makes that provable:
on SQLite the file is opened read-only, and when no write-ahead log is pending also
``immutable`` so not even ``-wal``/``-shm`` files appear; on PostgreSQL the planner
reads inside a ``READ ONLY`` transaction that is rolled back.
"""

from __future__ import annotations

import html
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from campaign.config import Config
from campaign.db.engine import make_engine
from campaign.planner.run import RunReport, plan_run
from campaign.planner.targeting import TargetingSource


def open_read_only(url: str) -> Engine:
    """An engine that cannot change the database at ``url``.

    SQLite: ``mode=ro`` (plus ``immutable=1`` when no ``-wal`` file exists, so the
    read creates no side files). PostgreSQL: a normal engine; the planner's dry run
    sets its transaction ``READ ONLY``.

    Raises:
        DatabaseError: the URL is invalid or the server unreachable.
    """
    parsed = make_url(url)
    in_memory = not parsed.database or parsed.database == ":memory:"
    if parsed.get_backend_name() != "sqlite" or in_memory:
        return make_engine(url)
    path = Path(str(parsed.database)).resolve()
    if not path.is_file():
        return make_engine(url, create=False)  # says the file is missing, creates none
    pending_wal = Path(f"{path}-wal").exists()
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if pending_wal else "&immutable=1")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return create_engine("sqlite://", creator=connect, hide_parameters=True)


def preview_run(
    engine: Engine,
    config: Config,
    campaign_name: str,
    *,
    as_of: datetime,
    slot: datetime,
    limit: int | None = 5,
    user: str | None = None,
    now: Callable[[], datetime] | None = None,
    progress: Callable[[int], None] | None = None,
    targeting: TargetingSource | None = None,
) -> RunReport:
    """Who would get what and why, with up to ``limit`` rendered messages; writes nothing.

    ``user`` (a shop user id) narrows the preview to that person. Messages beyond
    ``limit`` are decided but not rendered, so a template error that only one of
    them would hit shows up in the real run, not here.

    Raises:
        NotFound, TemplateError, ConfigError: as :func:`plan_run`.
    """
    return plan_run(
        engine, config, campaign_name, as_of=as_of, slot=slot, dry_run=True,
        progress=progress, now=now, only_user=user, render_limit=limit, targeting=targeting,
    )


def preview_html(report: RunReport, *, rows: int = 200) -> str:
    """A self-contained HTML page of a preview: the decisions table and the messages."""
    e = html.escape
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())) or "nobody"
    head = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Preview: {e(report.campaign)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}"
        "th{background:#f4f4f4}.msg{border:1px solid #ccc;margin:1.5em 0;padding:1em}"
        "iframe{width:100%;height:480px;border:1px solid #eee}pre{white-space:pre-wrap}"
        "</style></head><body>"
    )
    parts = [
        head,
        f"<h1>Preview of {e(report.campaign)}</h1>",
        f"<p>as of {e(report.as_of.isoformat())}, slot {e(report.slot.isoformat())}. "
        f"Nothing was written or sent.</p><p>{e(counts)}</p>",
        "<h2>Decisions</h2><table><tr><th>user</th><th>risk</th><th>tier</th>"
        "<th>channel</th><th>status</th><th>reason</th><th>variant</th><th>coupon</th>"
        "<th>subject</th></tr>",
    ]
    frame = report.decisions.head(rows)
    for row in frame.itertuples(index=False):
        parts.append(
            "<tr>"
            + "".join(
                f"<td>{e('' if v is None or v != v else str(v))}</td>"
                for v in (
                    row.external_id, f"{row.risk:.2f}", row.tier, row.channel, row.status,
                    row.skip_reason or row.last_error, row.variant,
                    f"{row.coupon_code} (-{row.percent_off}%)" if row.coupon_code else "",
                    row.subject,
                )
            )
            + "</tr>"
        )
    parts.append("</table>")
    if len(report.decisions) > rows:
        parts.append(f"<p>… and {len(report.decisions) - rows} more.</p>")
    parts.append("<h2>Messages</h2>")
    for message in report.messages:
        parts.append(
            f"<div class='msg'><p><b>{e(message.external_id)}</b> ({e(message.name or '')}) via "
            f"{e(message.channel)} to {e(message.address or '')}, variant {e(message.variant)}, "
            f"locale {e(message.locale)}</p>"
        )
        if message.subject:
            parts.append(f"<p>Subject: <b>{e(message.subject)}</b></p>")
        if message.html:
            parts.append(f"<iframe sandbox srcdoc=\"{e(message.html, quote=True)}\"></iframe>")
        parts.append(f"<pre>{e(message.text)}</pre></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_preview_html(report: RunReport, path: Path) -> Path:
    """Write :func:`preview_html` to ``path`` (UTF-8) and return it."""
    path.write_text(preview_html(report), encoding="utf-8")
    return path
