"""The console's HTML: Jinja2 pages under ``pages/``, autoescaped, with shared headers.

These pages are the product's own (not marketers' templates): an ordinary autoescaping
environment is enough. Every page answers with a strict Content-Security-Policy (own
scripts only; the message preview runs in a sandboxed frame without scripts), no
framing, and ``no-store`` so a shared computer's back button shows nothing after logout.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from campaign.app.accounts import allowed
from campaign.console import i18n
from campaign.console.auth import csrf_token

PAGES_DIR = Path(__file__).resolve().parent / "pages"
STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https: http:; frame-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=len(i18n.LANGUAGES))
def environment(language: str) -> Environment:
    """The pages in ``language``: its catalog installed, its date and number filters."""
    env = Environment(
        loader=FileSystemLoader(PAGES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Trimmed: a {% trans %} block's line breaks are not part of its catalog entry.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = partial(i18n.format_when, language=language)
    env.filters["number"] = lambda value, decimals=None: i18n.format_number(
        value, language, decimals
    )
    env.filters["share"] = lambda value, decimals=1: i18n.format_share(value, language, decimals)
    env.filters["points"] = lambda value, decimals=1: i18n.format_points(
        value, language, decimals
    )
    env.filters["uplift"] = lambda value, outcome, currency: i18n.format_uplift(
        value, outcome, currency, language
    )
    env.filters["word"] = partial(i18n.word_in, language=language)
    env.filters["money"] = lambda minor, currency: i18n.format_money_for(
        minor, currency, language
    )
    return env


def language_of(request: Request) -> str:
    """The request's language (see :func:`campaign.console.i18n.choose_language`)."""
    return i18n.choose_language(
        request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
    )


def gettext_of(request: Request) -> Any:
    """``gettext`` in the request's language, for messages the routes build."""
    return i18n.gettext_for(language_of(request))


def render(request: Request, view: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``pages/<view>`` in the request's language with the account, its permissions and
    the CSRF token."""
    account = getattr(request.state, "account", None)
    language = language_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context.update(
        account=account,
        can=(lambda permission: account is not None and allowed(account.role, permission)),
        csrf=csrf_token(request),
        path=request.url.path,
        here=here,
        lang=language,
        role_names={r: i18n.word_in(r, language) for r in ("marketer", "analyst", "operator")},
        languages={tag: name for tag, (_, name) in i18n.LANGUAGES.items()},
    )
    html = environment(language).get_template(view).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
