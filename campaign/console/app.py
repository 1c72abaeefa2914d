"""The marketer's console (starlette; thin: check who asks, call a use case, render).

Routes (docs/console.md has the permission of each):

* ``GET /login``, ``POST /login``, ``POST /logout``;
* ``GET /`` the campaigns: schedule, next slot, last runs, pause state;
  ``GET /campaigns/{name}/audience[?page=&user=]`` (who a run would message and why);
  ``POST /campaigns/{name}/pause|resume`` (operators);
* ``GET /templates``, ``GET /templates/file?name=``, ``POST /templates/check`` (the live
  lint and preview), ``POST /templates/save``, ``GET /templates/history?name=``,
  ``GET /templates/version?name=&version=``, ``POST /templates/revert``,
  ``POST /templates/test-send`` (the campaign's messages to the seed list);
* ``GET /report[?campaign=&view=page&download=1]`` (the report's tables, or the page of
  ``campaign report --html``), ``GET /report/csv?table=&campaign=`` (one table's CSV);
* ``GET /models`` (analysts, operators: the churn and uplift trees as rules, versions);
* ``GET /activity`` (every recorded write), ``GET /accounts`` (operators);
* ``GET /outbox`` (``campaign status``), ``POST /outbox/requeue`` (operators);
* ``GET /language?to=&next=`` (the language switch: a cookie, then back);
* ``GET /static/...`` (the console's own script and style), ``GET /healthz``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from campaign.app import accounts
from campaign.app.campaigns import (
    agent_status,
    campaigns_overview,
    requeue_dead_messages,
    switch_campaign,
)
from campaign.common.errors import CampaignError
from campaign.config import Config
from campaign.console import i18n
from campaign.console.auth import LoginLimiter, Sessions, csrf_ok, read_form, start_session
from campaign.console.model_pages import ModelPages
from campaign.console.pages import STATIC_DIR, gettext_of, render
from campaign.console.result_pages import ResultPages
from campaign.console.template_pages import TemplatePages
from campaign.db.console import Account
from campaign.db.pauses import ALL

log = logging.getLogger(__name__)
COOKIE = "campaign_console"
AUDIENCE_PAGE = 50


def _safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (no ``//host`` or scheme)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class _Console:
    """The state the routes share: config, engine, clock, sessions and the limiter."""

    def __init__(self, config: Config, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        settings = config.console
        self.sessions = Sessions(engine, settings.session_hours * 3600)
        self.limiter = LoginLimiter(settings.login_attempts, settings.login_window_seconds)

    # -- login ------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        if await self.sessions.account(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return render(request, "login.html", next=request.query_params.get("next", "/"))

    async def login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=413)
        _ = gettext_of(request)
        if not csrf_ok(request, form):
            return PlainTextResponse(
                _("refused: this form has no valid CSRF token (reload the page)"),
                status_code=403,
            )
        name = form.get("name", "").strip()
        client = request.client.host if request.client else "unknown"
        keys = (f"name:{name.lower()}", f"client:{client}")
        wait = self.limiter.retry_after(*keys)
        target = form.get("next", "/")
        if wait:
            return render(
                request, "login.html", 429, next=target, name=name,
                message=_("too many failed logins: try again in %(seconds)s s") % {
                    "seconds": wait},
            )
        account = await run_in_threadpool(
            accounts.authenticate, self.engine, name, form.get("password", ""), now=self.clock
        )
        if account is None:
            self.limiter.failed(*keys)
            log.warning("console: failed login for %r from %s", name, client)
            return render(
                request, "login.html", 401, next=target, name=name,
                message=_("wrong name or password (or the account is disabled)"),
            )
        self.limiter.succeeded(keys[0])
        start_session(request, account)
        return RedirectResponse(_safe_next(target), status_code=303)

    async def logout(self, request: Request, account: Account) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- campaigns --------------------------------------------------------------------

    async def campaigns(self, request: Request, account: Account) -> Response:
        overview = await run_in_threadpool(
            lambda: campaigns_overview(self.engine, self.config, now=self.clock())
        )
        return render(request, "campaigns.html", campaigns=overview, now=self.clock())

    async def _switch(self, request: Request, account: Account, paused: bool) -> Response:
        name = request.path_params["name"]
        campaign = ALL if name == "all" else name
        reason = request.state.form.get("reason", "").strip() or None
        try:
            await run_in_threadpool(
                lambda: switch_campaign(
                    self.engine, self.config, campaign, paused, by=account.name,
                    now=self.clock(), reason=reason,
                )
            )
        except CampaignError as exc:
            return render(request, "error.html", 404, message=str(exc))
        return RedirectResponse("/", status_code=303)

    async def audience(self, request: Request, account: Account) -> Response:
        """Who a run would message and why, a page of rows (searchable), or one
        customer's rendered message; addresses masked unless the role may see them."""
        from campaign.app.audience import audience_page

        name = request.path_params["name"]
        raw = request.query_params.get("page", "1")
        page = int(raw) if raw.isdigit() and int(raw) > 0 else 1
        user = (request.query_params.get("user") or "").strip() or None
        search = (request.query_params.get("q") or "").strip() or None
        # To the minute: paging through an audience within a minute reads one fit of the
        # recommender (campaign.recommend.service), not one per page.
        as_of = self.config.clock.as_of or self.clock().replace(second=0, microsecond=0)
        slot = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            found = await run_in_threadpool(
                lambda: audience_page(
                    self.engine, self.config, name, as_of=as_of, slot=slot, now=self.clock,
                    page=page, size=AUDIENCE_PAGE, search=search, user=user,
                    addresses=accounts.allowed(account.role, accounts.ADDRESSES),
                )
            )
        except CampaignError as exc:
            return render(request, "error.html", 404, message=str(exc))
        return render(
            request, "audience.html", campaign=name, found=found, user=user, search=search,
            as_of=as_of, currency=self.config.shop.currency,
        )

    async def pause(self, request: Request, account: Account) -> Response:
        return await self._switch(request, account, True)

    async def resume(self, request: Request, account: Account) -> Response:
        return await self._switch(request, account, False)

    # -- the record and the accounts --------------------------------------------------

    async def activity(self, request: Request, account: Account) -> Response:
        raw = request.query_params.get("page", "1")
        page = int(raw) if raw.isdigit() and int(raw) > 0 else 1
        size = 100
        entries = await run_in_threadpool(
            accounts.recent_writes, self.engine, size + 1, (page - 1) * size
        )
        return render(
            request, "activity.html", entries=entries[:size], page=page,
            more=len(entries) > size,
        )

    async def outbox(self, request: Request, account: Account, moved: int | None = None
                     ) -> Response:
        report = await run_in_threadpool(
            lambda: agent_status(self.engine, self.config, now=self.clock())
        )
        counts = {(r["channel"], r["status"]): r["messages"] for r in report.outbox}
        return render(
            request, "outbox.html", report=report, counts=counts, moved=moved,
            statuses=sorted({s for _, s in counts}), channels=sorted({c for c, _ in counts}),
            dead=sum(n for (_, s), n in counts.items() if s == "dead"),
            campaign_names=[c.name for c in self.config.campaigns],
        )

    async def requeue(self, request: Request, account: Account) -> Response:
        campaign = request.state.form.get("campaign") or None
        try:
            moved = await run_in_threadpool(
                lambda: requeue_dead_messages(
                    self.engine, self.config, by=account.name, now=self.clock(),
                    campaign=campaign,
                )
            )
        except CampaignError as exc:
            return render(request, "error.html", 404, message=str(exc))
        return await self.outbox(request, account, moved)

    async def accounts_page(self, request: Request, account: Account) -> Response:
        found = await run_in_threadpool(accounts.list_accounts, self.engine)
        return render(request, "accounts.html", accounts=found)

    async def language(self, request: Request) -> Response:
        """Remember the chosen language in a cookie (a year) and go back where the
        switch was clicked; works without JavaScript, logged in or not."""
        chosen = request.query_params.get("to", "")
        answer = RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        if chosen in i18n.LANGUAGES:
            answer.set_cookie(
                i18n.COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax", httponly=True
            )
        return answer

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def session_key(config: Config, engine: Engine) -> str:
    """The key that signs session cookies: ``[console] secret_env``, else the database's
    own installation key (made on first use)."""
    secret = config.console.secret
    if secret is not None:
        return secret.get_secret_value()
    return accounts.installation_key(engine).hex()


def create_app(config: Config, engine: Engine, *, clock: Callable[[], datetime]) -> Starlette:
    """The starlette app of ``campaign console``; ``clock`` returns aware UTC now."""
    console = _Console(config, engine, clock)
    templates = TemplatePages(config, engine, clock)
    results = ResultPages(config, engine, clock)
    models = ModelPages(config, engine)
    guard = console.sessions.guard
    read, edit = accounts.READ, accounts.EDIT_TEMPLATES
    routes = [
        Route("/healthz", console.healthz, methods=["GET"]),
        Route("/language", console.language, methods=["GET"]),
        Route("/login", console.login_page, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", guard(read, console.logout), methods=["POST"]),
        Route("/", guard(read, console.campaigns), methods=["GET"]),
        Route("/campaigns/{name}/audience", guard(read, console.audience), methods=["GET"]),
        Route("/campaigns/{name}/pause", guard(accounts.PAUSE, console.pause), methods=["POST"]),
        Route("/campaigns/{name}/resume", guard(accounts.PAUSE, console.resume),
              methods=["POST"]),
        Route("/templates", guard(read, templates.index), methods=["GET"]),
        Route("/templates/file", guard(read, templates.file), methods=["GET"]),
        Route("/templates/check", guard(edit, templates.check), methods=["POST"]),
        Route("/templates/save", guard(edit, templates.save), methods=["POST"]),
        Route("/templates/history", guard(read, templates.history), methods=["GET"]),
        Route("/templates/version", guard(read, templates.version), methods=["GET"]),
        Route("/templates/revert", guard(edit, templates.revert), methods=["POST"]),
        Route("/templates/test-send", guard(edit, templates.test_send), methods=["POST"]),
        Route("/activity", guard(read, console.activity), methods=["GET"]),
        Route("/report", guard(read, results.page), methods=["GET"]),
        Route("/report/csv", guard(read, results.csv), methods=["GET"]),
        Route("/models", guard(accounts.MODELS, models.page), methods=["GET"]),
        Route("/outbox", guard(accounts.OUTBOX, console.outbox), methods=["GET"]),
        Route("/outbox/requeue", guard(accounts.OUTBOX, console.requeue), methods=["POST"]),
        Route("/accounts", guard(accounts.READ_ACCOUNTS, console.accounts_page),
              methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=session_key(config, engine),
            session_cookie=COOKIE,
            max_age=config.console.session_hours * 3600,
            same_site="strict",
            https_only=False,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)
