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

Pure apart from reading the template files.
"""

from __future__ import annotations

import bisect
import difflib
import html
import inspect
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.parser import Parser

from campaign.common.errors import TemplateBudgetError, TemplateError
from campaign.common.optout import StopWords, opt_out_instructions
from campaign.templating.budget import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_RENDER_TIMEOUT_SECONDS,
    budget_scope,
)
from campaign.templating.context import CONTEXT, sample_context
from campaign.templating.environment import (
    LAYOUTS_DIR,
    CampaignEnvironment,
    TemplateFileRefused,
    available_locales,
    describe_file_kind,
    list_template_sets,
    make_environment,
)
from campaign.templating.render import (
    FILES,
    Rendered,
    display_name,
    filename_to_name,
    render_message,
    translate_error,
)

Severity = Literal["error", "warning"]
DEFAULT_MAX_SMS_SEGMENTS = 2
DEFAULT_MAX_SUBJECT_CHARS = 80
KNOWN_FILES = frozenset(name for files in FILES.values() for name in files)
_JINJA_SPECIAL = frozenset({"loop", "self", "caller", "varargs", "kwargs", "super"})
# Filters after which a loop over products still yields products.
_ITEM_PRESERVING = frozenset(
    {"reverse", "sort", "list", "unique", "select", "reject", "selectattr", "rejectattr", "batch"}
)
_ATTRIBUTE_FILTERS = frozenset(
    {"map", "sort", "sum", "selectattr", "rejectattr", "groupby", "unique", "min", "max"}
)

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
VOID_ELEMENTS = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)
# Elements whose end tag HTML lets an author omit.
OPTIONAL_END = frozenset("p li td th tr thead tbody tfoot option dt dd colgroup".split())


@dataclass(frozen=True, order=True)
class LintIssue:
    """One finding: ``templates/winback/en/email.html:12: ...``."""

    path: str
    line: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {label}{self.message}"


@dataclass(frozen=True)
class SmsInfo:
    """Encoding, length in that encoding's units, and segments of one SMS text."""

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int
    non_gsm: str


def sms_segments(text: str) -> SmsInfo:
    """How an SMS text is encoded and into how many segments it splits.

    GSM-7 when every character is in the GSM 03.38 basic or extension table (extension
    characters count twice): 160 units in one segment, 153 per segment when
    concatenated. Otherwise UCS-2, counted in UTF-16 code units: 70, then 67.
    """
    non_gsm = "".join(
        sorted({ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION})
    )
    if not non_gsm:
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi = 160, 153
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
        encoding = "UCS-2"
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = math.ceil(units / multi)
    return SmsInfo(encoding, units, segments, non_gsm)


Position = tuple[int, int]  # (line, column) in the rendered HTML, as HTMLParser counts


@dataclass(frozen=True)
class HtmlProblem:
    """An unbalanced tag: where (rendered), what, and where the tag it concerns opened."""

    at: Position
    message: str
    opened: Position | None = None
    opened_tag: str | None = None


class _BalanceChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, Position]] = []
        self.problems: list[HtmlProblem] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "href" and value:
                self.hrefs.append(value)
        if tag not in VOID_ELEMENTS:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "href" and value:
                self.hrefs.append(value)

    def handle_endtag(self, tag: str) -> None:
        at = self.getpos()
        if tag in VOID_ELEMENTS:
            return
        open_tags = [name for name, _ in self.stack]
        if tag not in open_tags:
            self.problems.append(HtmlProblem(at, f"</{tag}> closes nothing"))
            return
        while self.stack:
            name, opened = self.stack.pop()
            if name == tag:
                return
            if name not in OPTIONAL_END:
                self.problems.append(HtmlProblem(at, f"</{tag}> closes <{name}>", opened, name))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def finish(self) -> None:
        self.close()
        for name, opened in self.stack:
            if name not in OPTIONAL_END:
                self.problems.append(HtmlProblem(opened, f"<{name}> is never closed"))


def check_html(markup: str) -> tuple[list[HtmlProblem], list[str], str]:
    """Parse rendered HTML: (unbalanced tags, hrefs, visible text)."""
    checker = _BalanceChecker()
    checker.feed(markup)
    checker.finish()
    return checker.problems, checker.hrefs, " ".join(checker.text)


class _SourceMap:
    """Maps positions in one rendered template back to ``file:line`` of its sources.

    The template is rendered again chunk by chunk; for each chunk the innermost
    template generator that yielded it (through ``{% extends %}``, blocks and
    includes) names the file, and Jinja's debug table gives the line. Static text is
    then found in that file's source from that line on, so the line is exact for
    markup (expressions keep the line of their ``{{ }}``).
    """

    def __init__(self, env: CampaignEnvironment, name: str, context: Mapping[str, object]):
        self.env = env
        self.offsets: list[int] = []
        self.sources: list[tuple[str, int, str]] = []  # (template name, line, chunk)
        self._texts: dict[str, str] = {}
        template = env.template(name)
        parts: list[str] = []
        offset = 0
        with budget_scope(env.new_budget()) as budget:
            generator = template.root_render_func(template.new_context(dict(context)))
            for chunk in generator:
                budget.count_output(chunk)
                inner: Any = generator
                while inspect.isgenerator(getattr(inner, "gi_yieldfrom", None)):
                    inner = inner.gi_yieldfrom
                frame = inner.gi_frame
                where = name, 1
                if frame is not None:
                    owner = filename_to_name(env, frame.f_code.co_filename)
                    if owner is not None:
                        where = owner, env.template(owner).get_corresponding_lineno(
                            frame.f_lineno
                        )
                self.offsets.append(offset)
                self.sources.append((*where, str(chunk)))
                parts.append(str(chunk))
                offset += len(chunk)
        self.markup = "".join(parts)
        self._line_starts = [0] + [i + 1 for i, ch in enumerate(self.markup) if ch == "\n"]

    def _source(self, name: str) -> str:
        text = self._texts.get(name)
        if text is None:
            text = self._texts[name] = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
        return text

    def locate(self, position: Position) -> tuple[str, int]:
        """``(template name, source line)`` of a rendered (line, column)."""
        line, column = position
        offset = self._line_starts[min(line, len(self._line_starts)) - 1] + column
        index = max(bisect.bisect_right(self.offsets, offset) - 1, 0)
        name, reported, chunk = self.sources[index]
        within = offset - self.offsets[index]
        source = self._source(name)
        start = 0
        for _ in range(max(reported - 1, 0)):
            start = source.find("\n", start) + 1
            if start == 0:
                break
        found = source.find(chunk, start) if chunk else -1
        if found >= 0:
            return name, source.count("\n", 0, found + within) + 1
        return name, reported + chunk.count("\n", 0, within)


def _unwrap_loop_iter(node: nodes.Node) -> nodes.Node:
    # The environment wraps loop iterables in its loop guard; look through it.
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.ExtensionAttribute):
        return node.args[0]
    return node


def _products_chain(start: nodes.Node, product_names: set[str]) -> bool:
    """Whether ``start`` evaluates to a list of products (``products|sort(...)[:3]``)."""
    node: nodes.Node | None = start
    while node is not None:
        if isinstance(node, nodes.Name):
            return node.name in product_names
        if (
            isinstance(node, nodes.Filter)
            and node.name in _ITEM_PRESERVING
            and node.name != "batch"
        ):
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
            node = node.node
        else:
            return False
    return False


def _product_item(node: nodes.Node, product_names: set[str]) -> bool:
    """Whether ``node`` is one product (``products[0]``, ``products|first``)."""
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return isinstance(node.arg.value, int) and _products_chain(node.node, product_names)
    if isinstance(node, nodes.Filter) and node.name in ("first", "last", "random"):
        return node.node is not None and _products_chain(node.node, product_names)
    return False


class _StaticChecker:
    """Names and attributes a template uses that the documented context lacks."""

    def __init__(self, env: CampaignEnvironment, path: str) -> None:
        self.env = env
        self.path = path
        self.issues: list[LintIssue] = []

    def error(self, line: int | None, message: str) -> None:
        self.issues.append(LintIssue(self.path, line, "error", message))

    def check(self, tree: nodes.Template) -> None:
        known_top = set(CONTEXT) | set(self.env.globals) | _JINJA_SPECIAL
        undeclared = meta.find_undeclared_variables(tree) - known_top
        for name in sorted(undeclared):
            line = next(
                (n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
                None,
            )
            hint = _suggest(name, set(CONTEXT) | set(self.env.globals))
            self.error(line, f"'{name}' is undefined{hint}")
        assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        objects = {
            name: fields
            for name, (_, fields) in CONTEXT.items()
            if fields and name != "products" and name not in assigned
        }
        product_fields = CONTEXT["products"][1] or {}
        product_lists = {"products"} - assigned
        product_items = self._product_aliases(tree, product_lists)
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            attr = self._static_attr(node)
            target = getattr(node, "node", None)
            if attr is None or not isinstance(target, nodes.Name):
                continue
            if target.name in objects:
                self._check_field(node.lineno, target.name, attr, objects[target.name])
            elif target.name in product_items:
                self._check_field(node.lineno, target.name, attr, product_fields)
        for node in tree.find_all(nodes.Filter):
            if node.name not in self.env.filters:
                self.error(
                    node.lineno,
                    f"no filter named '{node.name}'{_suggest(node.name, self.env.filters)}",
                )
            elif (
                node.name in _ATTRIBUTE_FILTERS
                and node.node is not None
                and _products_chain(node.node, product_lists)
            ):
                self._check_filter_attribute(node, product_fields)

    def _product_aliases(self, tree: nodes.Template, product_lists: set[str]) -> set[str]:
        aliases: set[str] = set()
        for loop in tree.find_all(nodes.For):
            if isinstance(loop.target, nodes.Name) and _products_chain(
                _unwrap_loop_iter(loop.iter), product_lists
            ):
                aliases.add(loop.target.name)
        for assign in tree.find_all(nodes.Assign):
            if isinstance(assign.target, nodes.Name) and _product_item(assign.node, product_lists):
                aliases.add(assign.target.name)
        return aliases

    @staticmethod
    def _static_attr(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Getattr):
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            value = node.arg.value
            return value if isinstance(value, str) else None
        return None

    def _check_field(self, line: int, owner: str, attr: str, fields: dict[str, str]) -> None:
        if attr not in fields:
            self.error(line, f"'{owner}.{attr}' is undefined{_suggest(attr, fields)}")

    def _check_filter_attribute(self, node: nodes.Filter, fields: dict[str, str]) -> None:
        values = [kw.value for kw in node.kwargs if kw.key == "attribute"]
        if node.name in ("selectattr", "rejectattr") and node.args:
            values.append(node.args[0])
        for value in values:
            if isinstance(value, nodes.Const) and isinstance(value.value, str):
                attr = value.value.split(".")[0]
                if attr not in fields:
                    self.error(
                        node.lineno,
                        f"products have no attribute '{attr}'{_suggest(attr, fields)}",
                    )


def _suggest(name: str, known: object) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)  # type: ignore[call-overload]
    return f" (did you mean '{match[0]}'?)" if match else ""


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


# Every tag a template may use (Jinja's statements and their end tags).
KNOWN_TAGS = (
    "for", "endfor", "if", "elif", "else", "endif", "block", "endblock", "extends",
    "include", "import", "from", "macro", "endmacro", "call", "endcall", "filter",
    "endfilter", "set", "endset", "with", "endwith", "autoescape", "endautoescape",
    "raw", "endraw", "print", "trans", "endtrans", "pluralize",
)
_UNKNOWN_TAG = re.compile(r"Encountered unknown tag '([^']+)'")


def _static_check(env: CampaignEnvironment, name: str) -> list[LintIssue]:
    """Syntax, filters and names of one file (its includes are checked on their own)."""
    return _static_check_with_references(env, name)[0]


def _static_check_with_references(
    env: CampaignEnvironment, name: str
) -> tuple[list[LintIssue], set[str]]:
    """:func:`_static_check`, plus the file names it includes or extends (literal ones)."""
    path = display_name(env, name)
    references: set[str] = set()
    try:
        # Read through the loader, which refuses links, devices and FIFOs.
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        # The raw parser, not env.parse: we want the AST without the loop guard.
        tree = Parser(env, source, name, filename).parse()
        env.get_template(name)
    except TemplateSyntaxError as exc:
        error = translate_error(env, name, exc, None)
        message = error.reason
        missing = re.match(r"No filter named '([^']+)'", message)
        if missing:
            message = (
                f"no filter named '{missing.group(1)}'{_suggest(missing.group(1), env.filters)}"
            )
        unknown = _UNKNOWN_TAG.match(message)
        if unknown:
            hint = _suggest(unknown.group(1), KNOWN_TAGS)
            first, _, rest = message.partition(".")
            message = f"{first}{hint}.{rest}" if hint else message
        return [LintIssue(error.template, error.line, "error", message)], references
    except TemplateError as exc:
        return [LintIssue(exc.template, exc.line, "error", exc.reason)], references
    except TemplateFileRefused:
        return [], references  # reported once, by the walk over the folder (unsafe_entries)
    except Exception as exc:  # a loader refusal (bad include name) is the marketer's too
        return [LintIssue(path, None, "error", str(exc))], references
    references = {ref for ref in meta.find_referenced_templates(tree) if ref}
    checker = _StaticChecker(env, path)
    checker.check(tree)
    return checker.issues, references


def _is_plain_file(path: Path) -> bool:
    """A regular file that is not a symbolic link (``lstat``)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _issue(error: TemplateError, severity: Severity = "error", note: str = "") -> LintIssue:
    return LintIssue(error.template, error.line, severity, error.reason + note)


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
        return [_issue(exc)]
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
    source_map = _SourceMap(env, name, context)
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
        return [_issue(exc)]
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
) -> list[LintIssue]:
    """Every problem found in every template under ``templates_dir``, sorted.

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
                issues.extend(_static_check(env, f"{LAYOUTS_DIR}/{file.name}"))
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
        found, references = _static_check_with_references(env, f"{prefix}/{name}")
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
                _issue(exc, note=" (the rest of this set is not rendered: fix this first)")
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
                    _issue(
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
