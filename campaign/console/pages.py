"""The console's HTML: Jinja2 pages under ``pages/``, autoescaped, with shared headers.

These pages are the product's own (not marketers' templates): an ordinary autoescaping
environment is enough. Every page answers with a strict Content-Security-Policy (own
scripts only; the message preview runs in a sandboxed frame without scripts), no
framing, and ``no-store`` so a shared computer's back button shows nothing after logout.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from campaign.app.accounts import allowed
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


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return ""
    return f"{value:%Y-%m-%d %H:%M} UTC"


_env = Environment(
    loader=FileSystemLoader(PAGES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when


def render(request: Request, view: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``pages/<view>`` with the account, its permissions and the CSRF token."""
    account = getattr(request.state, "account", None)
    context.update(
        account=account,
        can=(lambda permission: account is not None and allowed(account.role, permission)),
        csrf=csrf_token(request),
        path=request.url.path,
    )
    html = _env.get_template(view).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
