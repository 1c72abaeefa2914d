"""The Jinja2 environment marketers' templates run in.

It is an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined` (a typo is an error, never an empty string),
autoescaping for ``.html`` files only, locale-aware filters and hard bounds:

* every ``{% for %}`` loop is wrapped in a guard that counts iterations and checks a
  wall-clock deadline, and every call and attribute access checks it too;
* ``*``, ``**`` and ``%`` are intercepted so ``"x" * 10**9`` or ``"%999999999s"``
  never allocate;
* ``str.format`` / ``str.format_map`` are refused outright (the family behind the
  public sandbox escapes, CVE-2024-56326 and CVE-2025-27516), as are padding methods
  and filters with absurd widths;
* the output size is checked while it streams (:meth:`RenderBudget.collect`).

Template names are chosen by configuration, never at run time: the loader accepts
``<set>/<locale>/<file>`` and ``_layouts/<file>`` only, and ``{% include %}`` /
``{% extends %}`` may reach the including template's own set or ``_layouts/``.
Every file it reads is a plain file inside the templates folder: it walks the name
one folder at a time from the folder's real path and refuses symbolic links (at any
level), devices, FIFOs and sockets before opening them (:func:`read_template_file`),
so a ``footer.txt`` linked to ``/proc/self/environ`` can never reach a message.
This module reads template files, so it is the one adapter of ``templating``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import BaseLoader, StrictUndefined, Template, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateNotFound
from jinja2.ext import Extension
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import select_autoescape
from jinja2.visitor import NodeTransformer

from campaign.common.money import format_money
from campaign.templating import bounds
from campaign.templating.bounds import MAX_PAD_WIDTH, MAX_REPEAT_RESULT  # noqa: F401
from campaign.templating.budget import (  # noqa: F401 - the public names live here too
    DEFAULT_MAX_LOOP_ITERATIONS,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_RENDER_TIMEOUT_SECONDS,
    OUTPUT_BATCH,
    RenderBudget,
    RenderLimitExceeded,
    _budget,
    active_budget,
    budget_scope,
)

LAYOUTS_DIR = "_layouts"
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# No message template comes near this; a bigger file is refused before it is read.
MAX_TEMPLATE_FILE_BYTES = 1_000_000
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.check_time()


class LoopGuard(Extension):
    """Wraps every ``{% for %}`` iterable so iterations count against the budget."""

    def guard(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Yield from ``iterable``, counting each item against the active budget."""
        budget = _budget.get()
        for item in iterable:
            if budget is not None:
                budget.count_iteration()
            yield item


def _guarded_range(*args: int) -> range:
    result = range(*args)
    budget = _budget.get()
    limit = budget.max_loop_iterations if budget else DEFAULT_MAX_LOOP_ITERATIONS
    if len(result) > limit:
        raise RenderLimitExceeded(f"range() of {len(result)} items is over the {limit} limit")
    return result


class TemplateFileRefused(SecurityError):
    """A template path is a symbolic link, a device, a FIFO, a socket or too large."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"{name} {reason} (template files must be plain files inside the templates folder)"
        )


def describe_file_kind(mode: int) -> str:
    """What a non-regular file is, in words: ``a symbolic link``, ``a FIFO``, ..."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _refusal(name: str, shown: str, mode: int) -> TemplateFileRefused:
    kind = describe_file_kind(mode)
    if shown == name:
        return TemplateFileRefused(name, f"is {kind}")
    return TemplateFileRefused(name, f"lies under {shown}, which is {kind}")


def read_template_file(
    root: Path, name: str, max_bytes: int = MAX_TEMPLATE_FILE_BYTES
) -> tuple[str, float]:
    """The text and mtime of template ``name`` (``a/b/c.txt``) under the folder ``root``.

    Walks ``name`` one part at a time with directory file descriptors from ``root``'s
    real path: every part is checked with ``lstat`` before it is opened and opened
    with ``O_NOFOLLOW``, the file must be a regular file (checked again on the open
    descriptor) of at most ``max_bytes``. Nothing is followed, so nothing can be
    swapped for a link between the check and the read.

    Raises:
        TemplateNotFound: a part does not exist or a folder part is a file.
        TemplateFileRefused: a part is a symbolic link, device, FIFO or socket, or the
            file is larger than ``max_bytes``.
    """
    check_template_name(name)
    parts = name.split("/")
    try:
        fd = os.open(os.path.realpath(root), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise TemplateNotFound(name) from None
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            shown = "/".join(parts[: index + 1])
            try:
                mode = os.lstat(part, dir_fd=fd).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise TemplateNotFound(name) from None
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
                if not last and stat.S_ISREG(mode):
                    raise TemplateNotFound(name)
                raise _refusal(name, shown, mode)
            flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
            flags |= _O_NONBLOCK if last else _O_DIRECTORY  # never block on a FIFO
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    # Swapped for a link (or else) since the lstat above.
                    raise _refusal(name, shown, stat.S_IFLNK) from None
                raise
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(name, name, info.st_mode)
        if info.st_size > max_bytes:
            raise TemplateFileRefused(name, f"is larger than {max_bytes} bytes")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise TemplateFileRefused(name, f"is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8"), info.st_mtime
    except UnicodeDecodeError as exc:
        raise TemplateFileRefused(name, f"is not UTF-8 text ({exc.reason})") from None


class TemplateSetLoader(BaseLoader):
    """Loads ``<set>/<locale>/<file>`` and ``_layouts/<file>`` under one folder.

    Absolute paths, ``..``, backslashes and hidden files are refused before the file
    system is touched; then :func:`read_template_file` refuses anything that is not a
    plain file reached without a link. The folder itself may be a link (it is
    resolved once, when the loader is made).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str, Callable[[], bool] | None]:
        source, mtime = read_template_file(self.root, template)
        filename = str(self.root / template)

        def uptodate() -> bool:
            try:
                return os.lstat(filename).st_mtime == mtime
            except OSError:
                return False

        return source, filename, uptodate


def check_template_name(name: str) -> None:
    """Refuse names that could leave the templates folder.

    Raises:
        TemplateNotFound: absolute, parent (``..``), backslash, hidden or empty parts.
    """
    parts = name.split("/")
    if (
        not name
        or "\\" in name
        or name.startswith("/")
        or any(not _SEGMENT.match(part) and part != LAYOUTS_DIR for part in parts)
        or ".." in parts
    ):
        raise TemplateNotFound(f"{name} (template names are <set>/<locale>/<file>)")


def template_set_exists(templates_dir: Path, name: str) -> bool:
    """Whether ``name`` is a template set (a folder) under ``templates_dir``.

    Only plain names qualify (letters, digits, ``_``, ``-``), never ``_layouts`` or a
    path, so a config value can never point outside the folder.
    """
    if not _SET_NAME.match(name) or name == LAYOUTS_DIR:
        return False
    folder = templates_dir / name
    return folder.is_dir() and not folder.is_symlink()


def list_template_sets(templates_dir: Path) -> list[str]:
    """Names of the template sets under ``templates_dir``, sorted."""
    if not templates_dir.is_dir():
        return []
    return sorted(
        p.name for p in templates_dir.iterdir() if template_set_exists(templates_dir, p.name)
    )


def available_locales(templates_dir: Path, template_set: str) -> list[str]:
    """Locale folders of one template set, sorted (e.g. ``['en', 'zh-CN']``)."""
    folder = templates_dir / template_set
    if not template_set_exists(templates_dir, template_set):
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.is_symlink() and _SEGMENT.match(p.name)
    )


@lru_cache(maxsize=256)
def _parse_locale(value: str) -> Locale:
    try:
        return Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"expected a date, got {type(value).__name__}")


def _zone_name(context: Context) -> str:
    """The reader's timezone name: the user's, else the shop's, else UTC."""
    for owner in ("user", "shop"):
        value = context.get(owner)
        if isinstance(value, dict) and isinstance(value.get("timezone"), str):
            if _zone(value["timezone"]) is not None:
                return str(value["timezone"])
    return "UTC"


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _locale_name(context: Context) -> str:
    value = context.get("locale")
    return value if isinstance(value, str) else "en"


@pass_context
def money_filter(context: Context, cents: Any, currency: str | None = None) -> str:
    """``{{ price_cents|money }}``: integer minor units → ``¥129.00`` / ``CN¥129.00``.

    The currency defaults to ``shop.currency``; the format follows ``locale``.
    """
    if isinstance(cents, bool) or not isinstance(cents, int | Decimal):
        raise TypeError(f"money expects integer cents, got {type(cents).__name__}")
    if currency is None:
        shop = context.get("shop")
        currency = shop.get("currency", "CNY") if isinstance(shop, dict) else "CNY"
    return _format_money(int(cents), currency, _locale_name(context))


# Prices repeat across thousands of messages (one catalogue); babel is the slow part.
@lru_cache(maxsize=65_536)
def _format_money(cents: int, currency: str, locale: str) -> str:
    return format_money(cents, currency, _parse_locale(locale))


@pass_context
def date_filter(context: Context, value: Any, format: str = "long") -> str:
    """``{{ coupon.expires_at|date }}``: a date in the reader's locale and timezone.

    ``format`` is ``short``, ``medium``, ``long`` or ``full``.
    """
    if format not in ("short", "medium", "long", "full"):
        raise ValueError("date format must be short, medium, long or full")
    if not isinstance(value, str | date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return _format_date(value, _zone_name(context), _locale_name(context), format)


# Every coupon of a run expires on the same few days: format each once.
@lru_cache(maxsize=16_384)
def _format_date(value: str | date, zone: str, locale: str, format: str) -> str:
    moment = _to_datetime(value).astimezone(_zone(zone))
    return format_date(moment.date(), format=format, locale=_parse_locale(locale))


@pass_context
def datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    """``{{ ts|datetime }}``: date and time in the reader's locale and timezone."""
    if format not in ("short", "medium", "long", "full"):
        raise ValueError("datetime format must be short, medium, long or full")
    moment = _to_datetime(value).astimezone(_zone(_zone_name(context)))
    return format_datetime(moment, format=format, locale=_parse_locale(_locale_name(context)))


@pass_context
def percent_filter(context: Context, value: Any) -> str:
    """``{{ coupon.percent_off|percent }}``: percentage points → ``20%`` in the locale."""
    if isinstance(value, bool):
        raise TypeError("percent expects a number")
    return _format_percent(str(value), _locale_name(context))


@lru_cache(maxsize=4096)
def _format_percent(value: str, locale: str) -> str:
    try:
        fraction = Decimal(value) / 100
    except InvalidOperation:
        raise TypeError(f"percent expects a number, got {value!r}") from None
    return format_percent(fraction, locale=_parse_locale(locale))


@pass_context
def number_filter(context: Context, value: Any) -> str:
    """``{{ n|number }}``: a number with the locale's grouping and decimal signs."""
    return format_decimal(Decimal(str(value)), locale=_parse_locale(_locale_name(context)))


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with macro and block buffers that count what they hold."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")


# Internal filters the compiler wraps around ``~`` (filters are called directly,
# without the sandbox's call checks, which keeps the hot path cheap).
_OPERAND_FILTER = "_campaign_concat_operand"
_CONCAT_FILTER = "_campaign_concat_result"


class _ConcatGuard(NodeTransformer):
    """Wraps ``a ~ b`` so each operand and the result are size-checked."""

    @staticmethod
    def _wrap(name: str, node: nodes.Expr) -> nodes.Filter:
        return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 - visitor API
        self.generic_visit(node)
        node.nodes = [self._wrap(_OPERAND_FILTER, operand) for operand in node.nodes]
        return self._wrap(_CONCAT_FILTER, node)


class CampaignEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with campaign's limits; build it with :func:`make_environment`."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, templates_dir: Path, display_root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.templates_dir = templates_dir
        self.display_root = display_root
        self.render_timeout_seconds = DEFAULT_RENDER_TIMEOUT_SECONDS
        self.max_output_bytes = DEFAULT_MAX_OUTPUT_BYTES
        self.max_loop_iterations = DEFAULT_MAX_LOOP_ITERATIONS
        # Template sets and their locale folders, read once per environment (per run).
        self.locale_cache: dict[str, list[str]] = {}
        # (set, wanted locale, default locale) → the folder pick_locale chose.
        self.locale_choices: dict[tuple[str, str | None, str | None], str] = {}
        # Compiled templates by name; files are read once per environment (per run).
        self.compiled: dict[str, Template] = {}
        self.binop_table["*"] = bounds.multiply
        self.binop_table["**"] = bounds.power
        self.binop_table["%"] = bounds.modulo
        self.binop_table["+"] = bounds.add

    @staticmethod
    def new_buffer() -> bounds.BoundedBuffer:
        """The output buffer of a macro or block (see :class:`_BoundedCodeGenerator`)."""
        return bounds.BoundedBuffer()

    def new_budget(self) -> RenderBudget:
        """A fresh budget with this environment's limits."""
        return RenderBudget(
            timeout_seconds=self.render_timeout_seconds,
            max_output_bytes=self.max_output_bytes,
            max_loop_iterations=self.max_loop_iterations,
        )

    def template(self, name: str) -> Template:
        """``get_template(name)``, compiled once per environment and then reused.

        Raises:
            TemplateNotFound, TemplateSyntaxError: as ``get_template``.
        """
        compiled = self.compiled.get(name)
        if compiled is None:
            compiled = self.compiled[name] = self.get_template(name)
        return compiled

    def locales_of(self, template_set: str) -> list[str]:
        """Locale folders of ``template_set`` (cached); empty when the set does not exist."""
        cached = self.locale_cache.get(template_set)
        if cached is None:
            cached = available_locales(self.templates_dir, template_set)
            self.locale_cache[template_set] = cached
        return cached

    # Names: only the including template's own set or _layouts/ may be reached.
    def join_path(self, template: str, parent: str) -> str:
        check_template_name(template)
        parent_parts = parent.split("/")
        parts = template.split("/")
        if parts[0] == LAYOUTS_DIR:
            return template
        if len(parts) == 1:
            # A bare file name is a sibling of the including template.
            return "/".join(parent_parts[:-1] + parts)
        if parent_parts[0] != LAYOUTS_DIR and parts[0] == parent_parts[0]:
            return template
        raise SecurityError(
            f"{parent} may include only its own set ({parent_parts[0]}/...) or {LAYOUTS_DIR}/"
        )

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guard = self.extensions[LoopGuard.identifier]
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                guard.attr("guard", lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        return _ConcatGuard().visit(tree)  # type: ignore[no-any-return]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        _tick()
        if isinstance(obj, str) and attr in ("format", "format_map"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Refuse at access time rather than handing out an Undefined that filters such
        # as map(attribute=...) could pass around silently.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def wrap_str_format(self, value: Any) -> Any:
        # Jinja would hand out a sandboxed wrapper for str.format; we refuse the method
        # itself, so no stored reference (|attr, set, a filter argument) can call it.
        if (
            isinstance(value, types.MethodType | types.BuiltinMethodType)
            and value.__name__ in ("format", "format_map")
            and isinstance(getattr(value, "__self__", None), str)
        ):
            return self.unsafe_undefined(value.__self__, value.__name__)
        return None

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _budget.get()
        if budget is not None:
            budget.check_time()
            # Bounds recursive macros that double a string on every call.
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, str) and len(arg) > budget.max_output_bytes:
                    raise RenderLimitExceeded(
                        f"a {len(arg)}-character argument is over max_output_bytes"
                    )
        if isinstance(__obj, types.BuiltinMethodType):
            args = bounds.check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple | dict):
            bounds.check_size(result, "a call's result")
        return result


def display_root_for(templates_dir: Path) -> str:
    """How template paths are shown: relative to the working directory when inside it."""
    resolved = templates_dir.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def make_environment(
    templates_dir: Path,
    *,
    display_root: str | None = None,
    render_timeout_seconds: float = DEFAULT_RENDER_TIMEOUT_SECONDS,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_loop_iterations: int = DEFAULT_MAX_LOOP_ITERATIONS,
) -> CampaignEnvironment:
    """The sandboxed environment over ``templates_dir`` (see the module docstring).

    ``display_root`` is how the folder appears in error messages (default: relative
    to the working directory, e.g. ``templates``). The limits are those of
    ``[templates]`` in the config; every render gets a fresh budget of them. Reading
    templates is lazy; nothing is loaded here.
    """
    env = CampaignEnvironment(
        templates_dir=templates_dir,
        display_root=display_root or display_root_for(templates_dir),
        loader=TemplateSetLoader(templates_dir),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm"), disabled_extensions=(), default_for_string=False
        ),
        extensions=[LoopGuard],
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=400,
    )
    env.render_timeout_seconds = render_timeout_seconds
    env.max_output_bytes = max_output_bytes
    env.max_loop_iterations = max_loop_iterations
    env.globals["range"] = _guarded_range
    # lipsum makes large output cheaply; namespace() lets loops accumulate state.
    for name in ("lipsum", "namespace"):
        env.globals.pop(name, None)
    env.filters.update(
        money=money_filter,
        date=date_filter,
        datetime=datetime_filter,
        percent=percent_filter,
        number=number_filter,
    )
    env.filters.update(bounds.bounded_filters(env.filters))
    env.filters[_OPERAND_FILTER] = bounds.concat_operand
    env.filters[_CONCAT_FILTER] = bounds.bounded_concat
    env.finalize = bounds.finalize
    return env
