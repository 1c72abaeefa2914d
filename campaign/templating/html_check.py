"""HTML balance of rendered emails (unclosed and stray tags), mapped back to the source
file and line."""

from __future__ import annotations

import bisect
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from campaign.templating.budget import (
    budget_scope,
)
from campaign.templating.environment import (
    CampaignEnvironment,
)
from campaign.templating.render import (
    filename_to_name,
)

VOID_ELEMENTS = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)

# Elements whose end tag HTML lets an author omit.
OPTIONAL_END = frozenset("p li td th tr thead tbody tfoot option dt dd colgroup".split())

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


class SourceMap:
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
