"""The static checks of template sources: names, filters, tags and product fields
that do not exist, found by walking the Jinja2 syntax tree without rendering."""

from __future__ import annotations

import difflib
import re

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.parser import Parser

from campaign.common.errors import TemplateError
from campaign.templating.context import CONTEXT
from campaign.templating.environment import (
    CampaignEnvironment,
    TemplateFileRefused,
)
from campaign.templating.issues import LintIssue
from campaign.templating.render import (
    display_name,
    translate_error,
)

_JINJA_SPECIAL = frozenset({"loop", "self", "caller", "varargs", "kwargs", "super"})

# Filters after which a loop over products still yields products.
_ITEM_PRESERVING = frozenset(
    {"reverse", "sort", "list", "unique", "select", "reject", "selectattr", "rejectattr", "batch"}
)

_ATTRIBUTE_FILTERS = frozenset(
    {"map", "sort", "sum", "selectattr", "rejectattr", "groupby", "unique", "min", "max"}
)


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
            hint = _suggest(name, set(CONTEXT) | set(self.env.globals)) or _suggest_field(name)
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

def _suggest_field(name: str) -> str:
    """A hint for a bare name that is a field of a context object: ``{{ frist_name }}``
    gets `` (did you mean 'first_name'? write it user.first_name)``."""
    owners = {
        field: owner
        for owner, (_, fields) in CONTEXT.items()
        for field in (fields or {})
        if owner != "products"
    }
    match = difflib.get_close_matches(name, list(owners), n=1, cutoff=0.6)
    if not match:
        return ""
    return f" (did you mean '{match[0]}'? write it {owners[match[0]]}.{match[0]})"


# Every tag a template may use (Jinja's statements and their end tags).
KNOWN_TAGS = (
    "for", "endfor", "if", "elif", "else", "endif", "block", "endblock", "extends",
    "include", "import", "from", "macro", "endmacro", "call", "endcall", "filter",
    "endfilter", "set", "endset", "with", "endwith", "autoescape", "endautoescape",
    "raw", "endraw", "print", "trans", "endtrans", "pluralize",
)

_UNKNOWN_TAG = re.compile(r"Encountered unknown tag '([^']+)'")


def static_check(env: CampaignEnvironment, name: str) -> list[LintIssue]:
    """Syntax, filters and names of one file (its includes are checked on their own)."""
    return static_check_with_references(env, name)[0]


def static_check_with_references(
    env: CampaignEnvironment, name: str
) -> tuple[list[LintIssue], set[str]]:
    """:func:`static_check`, plus the file names it includes or extends (literal ones)."""
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
