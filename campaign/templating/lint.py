"""``campaign templates lint``: find a marketer's mistake before a customer does.

For every template set and locale under the templates folder:

* files: anything under the folder that the loader would refuse (a symbolic link at
  any level, a device, a FIFO, a socket) is an error, named with what it is;
* layout: an email needs ``subject.txt``, ``email.html`` and ``email.txt``; SMS is
  ``sms.txt``; unknown files are flagged;
* syntax, unknown filters, and names outside the documented context
  (:data:`campaign.templating.context.CONTEXT`), including attributes of known objects
  (``user.first_nme``) and of product loop variables, each with a "did you mean";
* a render with the sample context (with and without a coupon), then: the subject is
  present and not too long, the HTML parses with balanced tags, the email (HTML and
  text) carries the unsubscribe link and the HTML the shop's postal address, and the
  SMS fits the configured number of segments (GSM-7 160/153, UCS-2 70/67 characters).

Pure apart from reading the template files. The checks live beside it: the static ones
(:mod:`~campaign.templating.static_check`), HTML balance
(:mod:`~campaign.templating.html_check`) and SMS length (:mod:`~campaign.templating.sms`).
"""

from __future__ import annotations

import html
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from campaign.common.errors import TemplateBudgetError, TemplateError
from campaign.common.optout import StopWords, opt_out_instructions
from campaign.templating.budget import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_RENDER_TIMEOUT_SECONDS,
)
from campaign.templating.context import sample_context
from campaign.templating.environment import (
    LAYOUTS_DIR,
    CampaignEnvironment,
    available_locales,
    describe_file_kind,
    list_template_sets,
    make_environment,
)
from campaign.templating.html_check import (  # noqa: F401 - importable from here too
    HtmlProblem,
    SourceMap,
    check_html,
)
from campaign.templating.issues import (  # noqa: F401 - importable from here too
    LintIssue,
    Severity,
    issue_from,
)
from campaign.templating.render import (
    FILES,
    Rendered,
    display_name,
    render_message,
)
from campaign.templating.sms import (  # noqa: F401 - importable from here too
    SmsInfo,
    sms_segments,
)
from campaign.templating.static_check import static_check, static_check_with_references

DEFAULT_MAX_SMS_SEGMENTS = 2
DEFAULT_MAX_SUBJECT_CHARS = 80
KNOWN_FILES = frozenset(name for files in FILES.values() for name in files)


def unsafe_entries(templates_dir: Path) -> list[tuple[str, str]]:
    """Entries under ``templates_dir`` the loader refuses: (relative path, what it is).

    Symbolic links (to files or folders, inside or outside the folder), devices, FIFOs
    and sockets; links are not followed, hidden entries (never loadable) are skipped.
    Read-only.
    """
    found: list[tuple[str, str]] = []
    stack = [(templates_dir, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = f"{prefix}{entry.name}"
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    target = "?"
                found.append((relative, f"a symbolic link (to {target})"))
            elif stat.S_ISDIR(mode):
                stack.append((Path(entry.path), f"{relative}/"))
            elif not stat.S_ISREG(mode):
                found.append((relative, describe_file_kind(mode)))
    return sorted(found)


def _is_plain_file(path: Path) -> bool:
    """A regular file that is not a symbolic link (``lstat``)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _check_email(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    max_subject_chars: int,
) -> list[LintIssue]:
    context = sample_context(locale)
    try:
        rendered = render_message(env, template_set, "email", locale, context)
    except TemplateBudgetError:
        raise
    except TemplateError as exc:
        return [issue_from(exc)]
    return check_rendered_email(
        env, template_set, locale, rendered, context, max_subject_chars=max_subject_chars
    )


def check_rendered_email(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    rendered: Rendered,
    context: Mapping[str, Any],
    *,
    max_subject_chars: int = DEFAULT_MAX_SUBJECT_CHARS,
) -> list[LintIssue]:
    """Lint's checks of one rendered email: subject length, balanced HTML (at the
    source ``file:line``), the unsubscribe link in HTML and text, the postal address.

    ``context`` is the one it was rendered with (its ``unsubscribe_url`` and shop).
    """
    issues: list[LintIssue] = []
    prefix = f"{template_set}/{locale}"
    subject_path = display_name(env, f"{prefix}/subject.txt")
    if rendered.subject and len(rendered.subject) > max_subject_chars:
        issues.append(
            LintIssue(
                subject_path,
                1,
                "warning",
                f"subject is {len(rendered.subject)} characters; keep it under {max_subject_chars}",
            )
        )
    html_path = display_name(env, f"{prefix}/email.html")
    problems, hrefs, text = check_html(rendered.html or "")
    if problems:
        data = dict(context)
        data["locale"] = locale
        issues.extend(_located_html_problems(env, f"{prefix}/email.html", data, problems))
    if context["unsubscribe_url"] not in hrefs:
        issues.append(
            LintIssue(
                html_path,
                None,
                "error",
                'no unsubscribe link: add <a href="{{ unsubscribe_url }}">',
            )
        )
    if context["shop"]["postal_address"] not in html.unescape(text):
        issues.append(
            LintIssue(html_path, None, "error", "no postal address: add {{ shop.postal_address }}")
        )
    if context["unsubscribe_url"] not in rendered.text:
        issues.append(
            LintIssue(
                display_name(env, f"{prefix}/email.txt"),
                None,
                "error",
                "no unsubscribe link: add {{ unsubscribe_url }}",
            )
        )
    return issues


def _located_html_problems(
    env: CampaignEnvironment,
    name: str,
    context: Mapping[str, object],
    problems: list[HtmlProblem],
) -> list[LintIssue]:
    """Balance problems at the ``file:line`` of the template source that made them."""
    source_map = SourceMap(env, name, context)
    issues = []
    for problem in problems:
        owner, line = source_map.locate(problem.at)
        message = problem.message
        if problem.opened is not None:
            opened_owner, opened_line = source_map.locate(problem.opened)
            where = (
                f"on line {opened_line}" if opened_owner == owner
                else f"at {display_name(env, opened_owner)}:{opened_line}"
            )
            message += f" opened {where}"
        issues.append(LintIssue(display_name(env, owner), line, "error", message))
    return issues


def _check_sms(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    max_segments: int,
    stop_words: StopWords,
) -> list[LintIssue]:
    context = sample_context(locale)
    try:
        rendered = render_message(env, template_set, "sms", locale, context)
    except TemplateBudgetError:
        raise
    except TemplateError as exc:
        return [issue_from(exc)]
    return check_rendered_sms(
        env, template_set, locale, rendered, context, max_segments=max_segments,
        stop_words=stop_words,
    )


def check_rendered_sms(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    rendered: Rendered,
    context: Mapping[str, Any],
    *,
    max_segments: int = DEFAULT_MAX_SMS_SEGMENTS,
    stop_words: StopWords | None = None,
) -> list[LintIssue]:
    """Lint's checks of one rendered SMS: segments, accidental UCS-2, an opt-out whose
    reply word the inbound parser honours (``stop_words``; default: the built-in lists)."""
    stop_words = stop_words or StopWords()
    path = display_name(env, f"{template_set}/{locale}/sms.txt")
    issues: list[LintIssue] = []
    info = sms_segments(rendered.text)
    summary = f"{info.units} {info.encoding} characters, {info.segments} segment(s)"
    if info.segments > max_segments:
        issues.append(
            LintIssue(
                path,
                None,
                "error",
                f"SMS is {summary}; the limit is {max_segments} (max_sms_segments)",
            )
        )
    if info.encoding == "UCS-2" and not locale.lower().startswith(("zh", "ja", "ko")):
        issues.append(
            LintIssue(
                path,
                None,
                "warning",
                f"characters {info.non_gsm!r} force UCS-2 (70 per segment, not 160): {summary}",
            )
        )
    instructions = opt_out_instructions(rendered.text)
    unhonoured = [word for word in instructions if not stop_words.matches(word)]
    if unhonoured:
        issues.append(
            LintIssue(
                path,
                None,
                "error",
                f"the opt-out reply {unhonoured[0]!r} is not a stop word the inbound parser"
                " honours ([responses] stop_words)",
            )
        )
    elif not instructions and str(context["unsubscribe_url"]) not in rendered.text:
        issues.append(
            LintIssue(
                path,
                None,
                "warning",
                "no opt-out: add {{ unsubscribe_url }} or a 'Reply STOP to opt out' / 回T退订 line",
            )
        )
    return issues


def lint_templates(
    templates_dir: Path,
    *,
    max_sms_segments: int = DEFAULT_MAX_SMS_SEGMENTS,
    max_subject_chars: int = DEFAULT_MAX_SUBJECT_CHARS,
    display_root: str | None = None,
    offer_usage: Mapping[str, frozenset[bool]] | None = None,
    render_timeout_seconds: float = DEFAULT_RENDER_TIMEOUT_SECONDS,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    stop_words: Sequence[str] | None = None,
    env: CampaignEnvironment | None = None,
) -> list[LintIssue]:
    """Every problem found in every template under ``templates_dir``, sorted.

    ``env`` is an environment over ``templates_dir`` to use (and leave its compiled
    templates in, for a render that follows); by default a fresh one with the limits.

    Each render gets the budget of ``render_timeout_seconds`` and ``max_output_bytes``
    (the config's ``[templates]`` limits); the first render of a set that goes over it
    is reported once and the set is not rendered again, so lint ends within a few
    budgets whatever the templates do.

    ``offer_usage`` maps a template set to the ``offer`` flags of the campaign variants
    using it (from the config): a set used with ``offer = false`` must render without a
    coupon (an error otherwise); a set no variant names gets a warning instead. Read-only.
    An empty list means every set renders cleanly with the sample context. An SMS's
    opt-out instruction ("Reply STOP", "回T退订") must name a word the inbound parser
    honours with ``stop_words`` (``[responses] stop_words``; default: the built-in lists).
    """
    matcher = StopWords(tuple(stop_words)) if stop_words is not None else StopWords()
    if env is None:
        env = make_environment(
            templates_dir,
            display_root=display_root,
            render_timeout_seconds=render_timeout_seconds,
            max_output_bytes=max_output_bytes,
        )
    issues: list[LintIssue] = []
    broken: set[str] = set()
    if not templates_dir.is_dir():
        return [LintIssue(env.display_root, None, "error", "templates folder not found")]
    for relative, kind in unsafe_entries(templates_dir):
        issues.append(
            LintIssue(
                display_name(env, relative),
                None,
                "error",
                f"is {kind}: template files must be plain files inside the templates"
                " folder, never read",
            )
        )
    layouts = templates_dir / LAYOUTS_DIR
    if layouts.is_dir() and not layouts.is_symlink():
        for file in sorted(layouts.iterdir()):
            if _is_plain_file(file) and not file.name.startswith("."):
                issues.extend(static_check(env, f"{LAYOUTS_DIR}/{file.name}"))
    sets = list_template_sets(templates_dir)
    if not sets:
        issues.append(LintIssue(env.display_root, None, "error", "no template sets"))
    for template_set in sets:
        locales = available_locales(templates_dir, template_set)
        if not locales:
            issues.append(
                LintIssue(
                    display_name(env, template_set),
                    None,
                    "error",
                    "no locale folders (e.g. en/, zh-CN/)",
                )
            )
        for locale in locales:
            issues.extend(
                _lint_locale(
                    env,
                    template_set,
                    locale,
                    max_sms_segments,
                    max_subject_chars,
                    offer_usage.get(template_set) if offer_usage is not None else None,
                    broken,
                    matcher,
                )
            )
    return sorted(set(issues), key=lambda i: (i.path, i.line or 0, i.severity, i.message))


def _lint_locale(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    max_sms_segments: int,
    max_subject_chars: int,
    usage: frozenset[bool] | None,
    broken: set[str],
    stop_words: StopWords,
) -> list[LintIssue]:
    prefix = f"{template_set}/{locale}"
    folder = env.templates_dir / template_set / locale
    # Links, FIFOs and devices count as present (so no "missing" error hides them)
    # and are reported by the walk over the folder, never read.
    present = {
        p.name
        for p in folder.iterdir()
        if not p.name.startswith(".") and (_is_plain_file(p) or p.name in KNOWN_FILES)
    }
    unsafe = {p.name for p in folder.iterdir() if p.name in present and not _is_plain_file(p)}
    issues: list[LintIssue] = []
    # Each medium's files, and the siblings they include, are checked on their own: a
    # mistake in one file does not hide the checks of the others.
    failed: set[str] = set(unsafe)
    included: set[str] = set()
    queue = sorted((present - unsafe) & KNOWN_FILES)
    checked: set[str] = set()
    uses: dict[str, set[str]] = {}
    while queue:
        name = queue.pop(0)
        checked.add(name)
        found, references = static_check_with_references(env, f"{prefix}/{name}")
        if any(i.severity == "error" for i in found):
            failed.add(name)
        issues.extend(found)
        siblings = {ref for ref in references if "/" not in ref and ref in present}
        uses[name] = siblings
        included |= siblings
        queue.extend(sorted(siblings - checked - unsafe - set(queue)))
    for name in sorted(present - KNOWN_FILES - included):
        issues.append(
            LintIssue(
                display_name(env, f"{prefix}/{name}"), None, "warning", "unknown file, never used"
            )
        )

    def broken_medium(medium: str) -> bool:
        # Its own files, or a sibling they include (transitively), failed the static check.
        seen: set[str] = set()
        stack = [f for f in FILES[medium] if f in present]
        while stack:
            name = stack.pop()
            if name in failed:
                return True
            seen.add(name)
            stack.extend(uses.get(name, set()) - seen)
        return False

    email_files = set(FILES["email"])
    has_email = bool(present & email_files)
    has_sms = "sms.txt" in present
    if has_email and not email_files <= present:
        missing = ", ".join(sorted(email_files - present))
        issues.append(
            LintIssue(display_name(env, prefix), None, "error", f"email is missing {missing}")
        )
        has_email = False
    if not has_email and not has_sms and not present & email_files:
        issues.append(
            LintIssue(
                display_name(env, prefix),
                None,
                "error",
                "no email (subject.txt, email.html, email.txt) or sms.txt",
            )
        )
    # Rendering a medium with a static error would only repeat it with a vaguer line.
    has_email = has_email and not broken_medium("email")
    has_sms = has_sms and not broken_medium("sms")
    if template_set in broken:
        return issues  # over the render budget already: one message per set, no more renders
    checks = []
    if has_email:
        checks.append(lambda: _check_email(env, template_set, locale, max_subject_chars))
    if has_sms:
        checks.append(
            lambda: _check_sms(env, template_set, locale, max_sms_segments, stop_words)
        )
    checks.append(
        lambda: _check_without_coupon(env, template_set, locale, has_email, has_sms, usage)
    )
    for check in checks:
        try:
            issues.extend(check())
        except TemplateBudgetError as exc:
            broken.add(template_set)
            issues.append(
                issue_from(exc, note=" (the rest of this set is not rendered: fix this first)")
            )
            break
    return issues


def _check_without_coupon(
    env: CampaignEnvironment,
    template_set: str,
    locale: str,
    has_email: bool,
    has_sms: bool,
    usage: frozenset[bool] | None,
) -> list[LintIssue]:
    """Renders with ``coupon`` none, as a variant with ``offer = false`` would."""
    if usage == frozenset({True}):
        return []
    media = [m for m, present in (("email", has_email), ("sms", has_sms)) if present]
    context = sample_context(locale, with_coupon=False)
    for medium in media:
        try:
            render_message(env, template_set, medium, locale, context)  # type: ignore[arg-type]
        except TemplateBudgetError:
            raise
        except TemplateError as exc:
            try:
                render_message(env, template_set, medium, locale, sample_context(locale))  # type: ignore[arg-type]
            except TemplateError:
                continue  # broken with a coupon too: reported by the checks above
            if usage is not None and False in usage:
                return [
                    issue_from(
                        exc,
                        "error",
                        " (a variant with offer = false uses this set: coupon is none)",
                    )
                ]
            return [
                LintIssue(
                    display_name(env, f"{template_set}/{locale}"),
                    None,
                    "warning",
                    "needs a coupon: use this set only in variants with offer = true"
                    " (or wrap coupon parts in {% if coupon %})",
                )
            ]
    return []
