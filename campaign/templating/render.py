"""Render one message of a template set, within the render budget.

A template set is a folder ``<templates>/<set>/<locale>/`` with ``subject.txt``,
``email.html``, ``email.txt`` (email) and ``sms.txt`` (SMS). Every failure — syntax,
an undefined name, a sandbox refusal, a blown budget — becomes one
:class:`campaign.common.errors.TemplateError` naming the file and line, e.g.
``templates/winback/en/email.html:12: 'first_nme' is undefined (did you mean
'first_name'?)``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Template, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from campaign.common.errors import TemplateBudgetError, TemplateError
from campaign.templating.context import check_plain
from campaign.templating.environment import (
    CampaignEnvironment,
    RenderBudget,
    RenderLimitExceeded,
    TemplateFileRefused,
    budget_scope,
)

Medium = Literal["email", "sms"]
FILES: dict[str, tuple[str, ...]] = {
    "email": ("subject.txt", "email.html", "email.txt"),
    "sms": ("sms.txt",),
}
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")


@dataclass(frozen=True)
class Rendered:
    """One rendered message: ``subject`` and ``html`` for email, ``text`` always."""

    subject: str | None
    html: str | None
    text: str


def pick_locale(available: Iterable[str], wanted: str | None, default: str | None) -> str | None:
    """The best locale folder for ``wanted``: exact, then same language, then ``default``.

    Matching ignores case and ``-``/``_`` (``zh_cn`` finds ``zh-CN``); returns None when
    nothing fits.
    """
    folders = list(available)

    def norm(value: str) -> str:
        return value.replace("_", "-").lower()

    for candidate in (wanted, default):
        if not candidate:
            continue
        for folder in folders:
            if norm(folder) == norm(candidate):
                return folder
        language = norm(candidate).split("-")[0]
        for folder in folders:
            if norm(folder).split("-")[0] == language:
                return folder
    return folders[0] if len(folders) == 1 else None


def _known_names(context: Mapping[str, Any]) -> list[str]:
    names: set[str] = set(context)
    stack: list[Any] = list(context.values())
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            names.update(value)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return sorted(names)


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _template_frame(exc: BaseException, filenames: set[str]) -> tuple[str | None, int | None]:
    """The innermost traceback frame inside a template: (filename, template line)."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in filenames or filename.endswith((".html", ".txt")):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def display_name(env: CampaignEnvironment, name: str) -> str:
    """How a template name is shown to people: ``templates/winback/en/email.html``."""
    return f"{env.display_root}/{name}"


def filename_to_name(env: CampaignEnvironment, filename: str | None) -> str | None:
    """The template name (``winback/en/email.html``) of a compiled template's file name."""
    if not filename:
        return None
    root = str(env.templates_dir.resolve())
    try:
        from pathlib import Path

        return Path(filename).resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def translate_error(
    env: CampaignEnvironment, name: str, exc: Exception, context: Mapping[str, Any] | None
) -> TemplateError:
    """Turn a Jinja or budget exception from ``name`` into a :class:`TemplateError`."""
    if isinstance(exc, TemplateSyntaxError):
        where = filename_to_name(env, exc.filename) or exc.name or name
        return TemplateError(display_name(env, where), exc.message or str(exc), exc.lineno)
    if isinstance(exc, TemplateNotFound):
        return TemplateError(display_name(env, name), f"template not found: {exc.message}")
    filename, line = _template_frame(exc, set())
    where = filename_to_name(env, filename) or name
    message = str(exc)
    if isinstance(exc, RenderLimitExceeded):
        return TemplateBudgetError(display_name(env, where), f"refused: {message}", line)
    if isinstance(exc, TemplateFileRefused):
        reason = f"refused: {message}"
    elif isinstance(exc, SecurityError):
        reason = f"refused by the sandbox: {message}"
    elif isinstance(exc, UndefinedError):
        top = _UNDEFINED_NAME.match(message)
        attribute = _NO_ATTRIBUTE.search(message)
        if top:
            known = list(context or {}) + list(env.globals)
            reason = f"'{top.group(1)}' is undefined{suggest(top.group(1), known)}"
        elif attribute:
            known = _known_names(context or {})
            reason = f"{message}{suggest(attribute.group(1), known)}"
        else:
            reason = message
    else:
        reason = f"{type(exc).__name__}: {message}"
    return TemplateError(display_name(env, where), reason, line)


def load_template(env: CampaignEnvironment, name: str) -> Template:
    """Compile ``name`` (cached by the environment).

    Raises:
        TemplateError: missing file or a syntax error, with file and line.
    """
    try:
        return env.template(name)
    except (TemplateSyntaxError, TemplateNotFound, SecurityError) as exc:
        raise translate_error(env, name, exc, None) from None


def render_template(
    env: CampaignEnvironment,
    name: str,
    context: Mapping[str, Any],
    budget: RenderBudget | None = None,
) -> str:
    """Render one template file under ``budget`` (time, loop and output limits), armed
    afresh for this file.

    Raises:
        TemplateError: anything the template does wrong, with file and line.
    """
    budget = budget or env.new_budget()
    with budget_scope(budget):
        return _render_file(env, name, context, budget)


def _render_file(
    env: CampaignEnvironment, name: str, context: Mapping[str, Any], budget: RenderBudget
) -> str:
    """Render one file under the budget armed by the caller (see :func:`budget_scope`)."""
    template = load_template(env, name)
    try:
        try:
            # What Template.generate does, minus a generator layer and a dict copy;
            # the budget checks the stream while it grows.
            return budget.collect(template.root_render_func(template.new_context(dict(context))))
        except Exception:
            # Re-raised with a traceback in template lines (file:line for the error).
            env.handle_exception()
    except TemplateError:
        raise
    except Exception as exc:  # every template failure is the marketer's to fix
        raise translate_error(env, name, exc, context) from None
    raise AssertionError("unreachable")  # pragma: no cover - handle_exception raises


def render_message(
    env: CampaignEnvironment,
    template_set: str,
    medium: Medium,
    locale: str,
    context: Mapping[str, Any],
    *,
    default_locale: str | None = None,
    budget: RenderBudget | None = None,
    context_checked: bool = False,
) -> Rendered:
    """Render the ``medium`` message of ``template_set`` for ``locale`` (pure given files).

    The locale folder is chosen by :func:`pick_locale` (exact, same language, then
    ``default_locale``); ``context`` must be plain data (see
    :mod:`campaign.templating.context`) and its ``locale`` is set to the folder used.
    ``budget`` (default: the environment's limits) covers the whole message: the
    time, loop and output limits apply to all its files together. ``context_checked``
    says the caller has already passed every value of ``context`` through
    :func:`~campaign.templating.context.check_plain` (a run checks its shared parts,
    such as product views and the shop, once rather than in every message). The
    subject is stripped and must be one non-empty line.

    Raises:
        TemplateError: unknown set or locale, a non-plain context, or any template error.
    """
    choice = (template_set, locale, default_locale)
    folder = env.locale_choices.get(choice)
    if folder is None:
        locales = env.locales_of(template_set)
        if not locales:
            raise TemplateError(display_name(env, template_set), "no such template set")
        folder = pick_locale(locales, locale, default_locale)
        if folder is not None:
            env.locale_choices[choice] = folder
    if folder is None:
        raise TemplateError(display_name(env, template_set), f"no templates for locale {locale!r}")
    if context.get("locale") == folder:
        data = context
    else:
        data = dict(context)
        data["locale"] = folder
    if not context_checked:
        try:
            check_plain(data)
        except TypeError as exc:
            raise TemplateError(display_name(env, template_set), str(exc)) from None
    if medium not in FILES:
        raise TemplateError(display_name(env, template_set), f"unknown medium {medium!r}")
    budget = budget or env.new_budget()
    prefix = f"{template_set}/{folder}"
    # One budget for the whole message (all its files): time, loops and output.
    with budget_scope(budget):
        if medium == "sms":
            text = _render_file(env, f"{prefix}/sms.txt", data, budget).strip()
            return Rendered(subject=None, html=None, text=text)
        subject_name = f"{prefix}/subject.txt"
        subject = " ".join(_render_file(env, subject_name, data, budget).split())
        if not subject:
            raise TemplateError(display_name(env, subject_name), "the subject is empty", 1)
        html = _render_file(env, f"{prefix}/email.html", data, budget)
        text = _render_file(env, f"{prefix}/email.txt", data, budget).strip() + "\n"
    return Rendered(subject=subject, html=html, text=text)
