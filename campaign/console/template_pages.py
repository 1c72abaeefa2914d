"""The template pages: the list of sets, the editor with its live lint and preview,
saving, the version history with diffs, and reverting.

Everything goes through :mod:`campaign.app.template_edits`, on the code behind
``campaign templates lint|render``: the findings and the preview are those the command line gives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from campaign.app import template_edits as use
from campaign.app.accounts import EDIT_TEMPLATES, allowed
from campaign.app.templates import UserContexts, campaign_for
from campaign.common.errors import CampaignError, InputError, NotFound
from campaign.config import Config
from campaign.console.pages import gettext_of, render
from campaign.db.console import Account
from campaign.templating.environment import display_root_for
from campaign.templating.issues import LintIssue


def say(request: Request, message: str) -> str:
    """``message`` in the request's language."""
    return str(gettext_of(request)(message))


def _status_of(exc: CampaignError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, use.TemplateRefused):
        return 422
    return 400


def _issue(issue: LintIssue, here: str) -> dict[str, Any]:
    return {
        "path": issue.path, "line": issue.line, "severity": issue.severity,
        "message": issue.message, "text": str(issue), "here": issue.path == here,
    }


def _preview(check: use.DraftCheck) -> dict[str, Any] | None:
    preview = check.preview
    if preview is None:
        return None
    rendered = preview.rendered
    sms = preview.sms
    return {
        "subject": rendered.subject, "html": rendered.html, "text": rendered.text,
        "locale": preview.locale, "notes": preview.notes,
        "checks": [str(issue) for issue in preview.issues],
        "sms": None if sms is None else {
            "encoding": sms.encoding, "units": sms.units, "segments": sms.segments,
        },
    }


def _markers(issues: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Line → the marker of the edited file's findings there (worst severity first)."""
    found: dict[int, dict[str, str]] = {}
    for issue in issues:
        if not issue["here"] or not issue["line"]:
            continue
        marker = found.setdefault(issue["line"], {"severity": "warning", "message": ""})
        if issue["severity"] == "error":
            marker["severity"] = "error"
        marker["message"] = "\n".join(m for m in (marker["message"], issue["message"]) if m)
    return found


class TemplatePages:
    """The template routes; ``clock`` returns aware UTC now."""

    def __init__(self, config: Config, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.contexts = UserContexts()

    def _here(self, name: str) -> str:
        return f"{display_root_for(self.config.templates_folder())}/{name}"

    def _options(self, source: dict[str, str], account: Account) -> dict[str, str | None]:
        """Preview options from a query or form; a real user only for template editors."""
        user = (source.get("user") or "").strip() or None
        if user is not None and not allowed(account.role, EDIT_TEMPLATES):
            raise InputError("user", f"the {account.role} role previews with sample data only")
        return {
            "channel": source.get("channel") or None,
            "locale": source.get("locale") or None,
            "user": user,
        }

    def _check(self, name: str, source: str, options: dict[str, str | None]) -> use.DraftCheck:
        return use.check_draft(
            self.config, name, source, now=self.clock(), engine=lambda: self.engine,
            channel=options["channel"], locale=options["locale"], user=options["user"],
            contexts=self.contexts,
        )

    def _problem(self, request: Request, exc: CampaignError) -> Response:
        return render(request, "error.html", _status_of(exc), message=str(exc))

    async def index(self, request: Request, account: Account) -> Response:
        sets = await run_in_threadpool(use.template_sets, self.config)
        return render(
            request, "templates.html", sets=sets, editable=use.editable(self.config),
            folder=str(self.config.templates_folder()),
        )

    async def _editor(
        self, request: Request, account: Account, name: str, source: str, *,
        status_code: int = 200, message: str | None = None, opened: str | None = None,
        options: dict[str, str | None] | None = None,
    ) -> Response:
        options = options or {"channel": None, "locale": None, "user": None}
        check = await run_in_threadpool(self._check, name, source, options)
        here = self._here(name)
        issues = [_issue(i, here) for i in check.issues]
        parts = name.split("/")
        return render(
            request, "editor.html", status_code,
            name=name, source=source, opened_sha=opened or use.sha256(source),
            issues=issues, markers=_markers(issues),
            preview=_preview(check), preview_error=check.error, message=message,
            options=options, medium=options["channel"] or use.medium_of(name),
            locales=self._locales(parts[0]) if len(parts) == 3 else [],
            editable=use.editable(self.config) and allowed(account.role, EDIT_TEMPLATES),
            saved=request.query_params.get("saved"), lines=max(1, len(source.splitlines())),
            test_campaign=self._test_campaign(name) if allowed(account.role, EDIT_TEMPLATES)
            else None,
        )

    def _test_campaign(self, name: str) -> str | None:
        """The campaign a test send of ``name``'s set goes out as (None: no button)."""
        if not self.config.console.test_seed_file:
            return None
        campaign, _, _ = campaign_for(self.config, name.split("/", 1)[0])
        return campaign.name if campaign is not None else None

    def _locales(self, template_set: str) -> list[str]:
        for found in use.template_sets(self.config):
            if found.name == template_set:
                return sorted(found.files)
        return []

    async def file(self, request: Request, account: Account) -> Response:
        name = request.query_params.get("name", "")
        try:
            options = self._options(dict(request.query_params), account)
            source = await run_in_threadpool(use.read_template, self.config, name)
        except CampaignError as exc:
            return self._problem(request, exc)
        return await self._editor(request, account, name, source, options=options)

    async def check(self, request: Request, account: Account) -> Response:
        form: dict[str, str] = request.state.form
        name = form.get("name", "")
        try:
            options = self._options(form, account)
            check = await run_in_threadpool(self._check, name, form.get("source", ""), options)
        except CampaignError as exc:
            return JSONResponse({"error": str(exc)}, status_code=_status_of(exc))
        here = self._here(name)
        return JSONResponse({
            "issues": [_issue(i, here) for i in check.issues],
            "preview": _preview(check), "error": check.error,
        }, headers={"Cache-Control": "no-store"})

    async def save(self, request: Request, account: Account) -> Response:
        form: dict[str, str] = request.state.form
        name, source = form.get("name", ""), form.get("source", "")
        # Browsers send textarea lines with CRLF; the files keep LF.
        source = source.replace("\r\n", "\n")
        try:
            number = await run_in_threadpool(
                lambda: use.save_template(
                    self.engine, self.config, name, source, author=account.name,
                    now=self.clock(), opened_sha=form.get("opened_sha") or None,
                )
            )
        except use.TemplateRefused:
            return await self._editor(
                request, account, name, source, status_code=422,
                message=say(request, "not saved: fix the errors below first"),
                opened=form.get("opened_sha"),
            )
        except CampaignError as exc:
            return self._problem(request, exc)
        return RedirectResponse(
            f"/templates/file?name={quote(name)}&saved={number}", status_code=303
        )

    async def test_send(self, request: Request, account: Account) -> Response:
        """Queue the campaign's real messages of a few sample users to the seed list."""
        from campaign.app.runs import test_send_to_seeds

        name = request.state.form.get("name", "")
        campaign, _, _ = campaign_for(self.config, name.split("/", 1)[0])
        if campaign is None:
            return render(request, "error.html", 400, message=say(
                request, "no campaign uses the template set of %(name)s") % {"name": name})
        as_of = self.config.clock.as_of or self.clock()
        try:
            report = await run_in_threadpool(
                lambda: test_send_to_seeds(
                    self.engine, self.config, campaign.name, by=account.name, as_of=as_of,
                    now=self.clock,
                )
            )
        except CampaignError as exc:
            return self._problem(request, exc)
        return render(request, "test_sent.html", name=name, campaign=campaign.name,
                      messages=report.messages)

    async def history(self, request: Request, account: Account) -> Response:
        name = request.query_params.get("name", "")
        try:
            versions = await run_in_threadpool(
                use.template_history, self.engine, self.config, name
            )
        except CampaignError as exc:
            return self._problem(request, exc)
        return render(
            request, "history.html", name=name, versions=versions,
            editable=use.editable(self.config) and allowed(account.role, EDIT_TEMPLATES),
        )

    async def version(self, request: Request, account: Account) -> Response:
        name = request.query_params.get("name", "")
        raw = request.query_params.get("version", "")
        if not raw.isdigit():
            return render(request, "error.html", 400, message=say(
                request, "%(value)r is not a version number") % {"value": raw})
        number = int(raw)

        def load() -> tuple[Any, Any, bool]:
            found = use.template_version(self.engine, self.config, name, number)
            try:
                before = use.template_version(self.engine, self.config, name, number - 1)
            except NotFound:
                before = None
            newest = use.template_history(self.engine, self.config, name)[0].version
            return found, before, newest == number

        try:
            found, before, latest = await run_in_threadpool(load)
        except CampaignError as exc:
            return self._problem(request, exc)
        diff = use.diff_lines(
            before.content if before else "", found.content,
            f"v{number - 1}" if before else "(nothing)", f"v{number}",
        )
        return render(
            request, "version.html", name=name, version=found, diff=diff, latest=latest,
            editable=use.editable(self.config) and allowed(account.role, EDIT_TEMPLATES),
        )

    async def revert(self, request: Request, account: Account) -> Response:
        form: dict[str, str] = request.state.form
        name, raw = form.get("name", ""), form.get("version", "")
        if not raw.isdigit():
            return render(request, "error.html", 400, message=say(
                request, "%(value)r is not a version number") % {"value": raw})
        try:
            number = await run_in_threadpool(
                lambda: use.revert_template(
                    self.engine, self.config, name, int(raw), author=account.name,
                    now=self.clock(),
                )
            )
        except CampaignError as exc:
            return self._problem(request, exc)
        return RedirectResponse(
            f"/templates/file?name={quote(name)}&saved={number}", status_code=303
        )
