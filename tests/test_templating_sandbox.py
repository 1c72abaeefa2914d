"""The public Jinja2 sandbox escapes, and resource abuse, are refused, never executed.

Each template below is a known way out of a sandbox (the str.format family of
CVE-2016-10745 / CVE-2019-10906, the stored format reference of CVE-2024-56326, the
|attr route of CVE-2025-27516, dunder walks to __globals__/__subclasses__) or a way
to exhaust the machine. Every one must end in a TemplateError, and the marker proves
nothing ran past the refusal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.common.errors import TemplateError
from campaign.templating.context import sample_context
from campaign.templating.environment import make_environment
from campaign.templating.render import render_template

ESCAPES = {
    "format_attribute_walk": '{{ "{0.__class__.__mro__}".format(secret) }}',
    "format_globals": '{{ "{0.__init__.__globals__}".format(cycler) }}',
    "format_map": '{{ "{x.__class__}".format_map({"x": secret}) }}',
    "stored_format_reference": '{% set f = "{0.__class__}".format %}{{ f(secret) }}',
    "stored_format_passed_to_filter": (
        '{% set f = "{0.__class__.__init__.__globals__}".format %}{{ [secret]|map(f)|list }}'
    ),
    "attr_filter_format": '{{ ("{0.__class__.__init__.__globals__}"|attr("format"))(secret) }}',
    "attr_filter_format_map": '{{ ("{x.__class__}"|attr("format_map"))({"x": secret}) }}',
    "getitem_format": '{{ "{0.__class__}"["format"](secret) }}',
    "attr_dunder_class": '{{ secret|attr("__class__") }}',
    "map_attribute_dunder": '{{ [secret]|map(attribute="__class__")|list }}',
    "map_attribute_globals": '{{ [cycler]|map(attribute="__init__.__globals__")|list }}',
    "cycler_globals": "{{ cycler.__init__.__globals__ }}",
    "joiner_globals": "{{ joiner.__init__.__globals__ }}",
    "range_self": "{{ range.__self__ }}",
    "subclasses_walk": '{{ "".__class__.__mro__[1].__subclasses__() }}',
    "subclasses_by_item": '{{ ""["__class__"]["__mro__"] }}',
    "self_context": "{{ self._TemplateReference__context }}",
    "lipsum_globals": "{{ lipsum.__globals__ }}",
    "namespace_globals": "{{ namespace.__init__.__globals__ }}",
    "loop_walk": "{% for x in products %}{{ loop.__class__ }}{% endfor %}",
    "mutate_context": '{{ user.update({"first_name": "pwned"}) }}',
    "mutate_list": "{{ products.append(1) }}",
    "selectattr_dunder": '{{ [secret]|selectattr("__class__")|list }}',
}

ABUSE = {
    "nested_loops": "{% for a in range(5000) %}{% for b in range(5000) %}{% endfor %}{% endfor %}",
    "huge_range": "{% for a in range(10**9) %}{% endfor %}",
    "string_repeat": '{{ "x" * 10**8 }}',
    "list_repeat": "{{ [0] * 10**8 }}",
    "power": "{{ 10 ** 10 ** 8 }}",
    "percent_width": '{{ "%999999999s" % "x" }}',
    "format_filter_width": '{{ "%999999999s"|format("x") }}',
    "center_filter": '{{ "x"|center(999999999) }}',
    "indent_filter": '{{ "a\nb"|indent(999999999) }}',
    "center_method": '{{ "x".center(999999999) }}',
    "zfill_method": '{{ "1".zfill(999999999) }}',
    "output_size": '{% for i in range(5000) %}{{ "y" * 9000 }}{% endfor %}',
    "doubling_macro": '{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f("ab") }}',
}


def _render(tmp_path: Path, source: str) -> str:
    folder = tmp_path / "t" / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.txt").write_text(source + "MARKER", encoding="utf-8")
    env = make_environment(tmp_path, display_root="templates")
    env.render_timeout_seconds = 1.0
    context = sample_context("en")
    context["secret"] = "s3cret"
    return render_template(env, "t/en/x.txt", context)


@pytest.mark.parametrize("source", list(ESCAPES.values()), ids=list(ESCAPES))
def test_a_known_sandbox_escape_is_refused(tmp_path: Path, source: str) -> None:
    with pytest.raises(TemplateError) as info:
        _render(tmp_path, source)
    assert info.value.template == "templates/t/en/x.txt"
    assert "MARKER" not in str(info.value)


@pytest.mark.parametrize("source", list(ABUSE.values()), ids=list(ABUSE))
def test_resource_abuse_is_stopped_by_the_render_budget(tmp_path: Path, source: str) -> None:
    with pytest.raises(TemplateError, match="refused"):
        _render(tmp_path, source)


def test_sandbox_refusals_say_so(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="refused by the sandbox: access to attribute 'format'"):
        _render(tmp_path, ESCAPES["attr_filter_format"])


def test_ordinary_string_methods_and_filters_still_work(tmp_path: Path) -> None:
    out = _render(
        tmp_path,
        '{{ user.first_name.upper() }} {{ "a-b".split("-")|join("+") }} {{ "%05d"|format(42) }}'
        ' {{ "ab"|center(6) }}|{{ products|map(attribute="name")|first }} {{ "x" * 3 }}',
    )
    assert out == "ALEX a+b 00042   ab  |Merino Wool Crew Sweater xxxMARKER"
