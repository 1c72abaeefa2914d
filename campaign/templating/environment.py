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

Template names are chosen by configuration, never at run time: the loader
(:mod:`campaign.templating.loader`) accepts ``<set>/<locale>/<file>`` and
``_layouts/<file>`` only, and ``{% include %}`` / ``{% extends %}`` may reach the
including template's own set or ``_layouts/``. The filters are
:mod:`campaign.templating.filters`, the render budget :mod:`campaign.templating.budget`;
their public names are importable from here too.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import select_autoescape
from jinja2.visitor import NodeTransformer

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
from campaign.templating.filters import (
    date_filter,
    datetime_filter,
    money_filter,
    number_filter,
    percent_filter,
)
from campaign.templating.loader import (  # noqa: F401 - the public names live here too
    LAYOUTS_DIR,
    MAX_TEMPLATE_FILE_BYTES,
    TemplateFileRefused,
    TemplateSetLoader,
    available_locales,
    check_template_name,
    describe_file_kind,
    display_root_for,
    list_template_sets,
    read_template_file,
    template_set_exists,
)


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
