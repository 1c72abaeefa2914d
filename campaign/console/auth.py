"""Who is asking: sessions, CSRF tokens, the login rate limit and the role checks.

* The session lives in a cookie signed by starlette's ``SessionMiddleware`` with the
  ``[console] secret_env`` key, else the database's installation key; it holds the
  account id, a digest of its password hash (a reset ends it) and a CSRF token, and expires
  ``[console] session_hours`` after login. Every request reloads the account, so a
  disabled account or a reset password ends its sessions at once.
* Every POST carries the session's CSRF token (a form field or the ``X-CSRF-Token``
  header), compared in constant time; a POST without it is refused with 403.
* Failed logins are counted per account name and per client address in a sliding
  window; past ``[console] login_attempts`` the login answers 429 until it passes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from campaign.app.accounts import account_by_id, allowed
from campaign.console import i18n
from campaign.db.console import Account

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 2_000_000

Handler = Callable[[Request, Account], Awaitable[Response]]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (anonymous sessions get one too)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded body of a POST (the console's forms and its script send no
    other kind), refused past :data:`MAX_FORM_BYTES`.

    Raises:
        ValueError: the body is too large.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise ValueError(f"form over {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    """Whether the POST carries the session's CSRF token."""
    expected = request.session.get(CSRF_FIELD)
    offered = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not expected or not offered:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())


def _password_mark(account: Account) -> str:
    """A short digest of the account's password hash: a reset (a new salt) changes it, so
    the sessions signed before end; the hash itself never leaves the database."""
    return hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]


def start_session(request: Request, account: Account) -> None:
    """Log ``account`` in: a fresh session (new CSRF token) bound to its password."""
    request.session.clear()
    request.session.update(uid=account.id, pwd=_password_mark(account), at=int(time.time()))
    csrf_token(request)


class Sessions:
    """Reads the logged-in account of a request and guards the routes by permission."""

    def __init__(self, engine: Engine, session_seconds: int) -> None:
        self.engine = engine
        self.session_seconds = session_seconds

    async def account(self, request: Request) -> Account | None:
        """The enabled account of this request's session, or None (and the session is
        emptied when it no longer holds: disabled, password reset, expired)."""
        uid = request.session.get("uid")
        if not isinstance(uid, int):
            return None
        account = await run_in_threadpool(account_by_id, self.engine, uid)
        started = request.session.get("at")
        fresh = isinstance(started, int) and time.time() - started < self.session_seconds
        if (
            account is None
            or account.disabled
            or not fresh
            or request.session.get("pwd") != _password_mark(account)
        ):
            request.session.clear()
            return None
        return account

    def guard(self, permission: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind a login and ``permission``; POSTs also need the CSRF token.

        No session: a page redirects to the login (303), a POST gets 401. A role
        without the permission gets 403.
        """

        async def endpoint(request: Request) -> Response:
            language = i18n.choose_language(
                request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
            )
            _ = i18n.gettext_for(language)
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except ValueError as exc:
                    return PlainTextResponse(str(exc), status_code=413)
                request.state.form = form
                if not csrf_ok(request, form):
                    return PlainTextResponse(
                        _("refused: this form has no valid CSRF token (reload the page)"),
                        status_code=403,
                    )
            account = await self.account(request)
            if account is None:
                if request.method == "POST":
                    return PlainTextResponse(_("log in first"), status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            if not allowed(account.role, permission):
                return PlainTextResponse(
                    _("forbidden: the %(role)s role cannot do this (%(permission)s)")
                    % {"role": i18n.word_in(account.role, language), "permission": permission},
                    status_code=403,
                )
            request.state.account = account
            return await handler(request, account)

        return endpoint


class LoginLimiter:
    """Failed logins per key (an account name, a client address) in a sliding window."""

    def __init__(self, attempts: int, window_seconds: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self.clock = clock
        self.failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self.failures[key]
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, *keys: str) -> int:
        """Seconds until any of ``keys`` may try again (0: now)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.attempts:
                wait = max(wait, self.window - (self.clock() - times[0]))
        return int(wait) + (1 if wait else 0)

    def failed(self, *keys: str) -> None:
        """Count one failed login against each of ``keys``."""
        for key in keys:
            self._recent(key).append(self.clock())

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` (the account name) after a good login."""
        self.failures.pop(key, None)
