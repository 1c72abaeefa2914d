"""Operations whose result could not fit in a message are refused before they run.

A clock cannot stop one C-level operation (a squaring of a million-digit number, a join
building 100 MB), so these templates must fail on a size check, never on the render
timeout: each assertion names the size refusal, which a time-out would not give.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.errors import TemplateBudgetError, TemplateError
from campaign.config import load_config
from campaign.templating.context import sample_context
from campaign.templating.environment import make_environment
from campaign.templating.lint import lint_templates
from campaign.templating.render import render_template
from tests.test_planner import add_user, make_config, planned, run, write_templates

ROOT = Path(__file__).resolve().parents[1]
SQUARINGS = "{% set a = 10 ** 100 %}" + "{% set a = a * a %}" * 15 + "{{ a > 1 }}"
BIG_JOIN = "{{ range(10000)|join('x' * 10000) }}"

AMPLIFIERS = {
    "squarings": (SQUARINGS, "multiplying would make a number"),
    "power": ("{% set a = 999999 ** 100 %}{{ (a * a) ** 5 }}", "base over 10**6"),
    "join_filter": (BIG_JOIN, "the join filter would build"),
    "join_method": ("{{ ('y' * 100).join(range(10000)) }}", "str.join would build"),
    "list_repeat_weight": ("{{ ['x' * 10000] * 10000 }}", "repeating would build"),
    "replace_filter": ("{{ ('ab' * 5000)|replace('', 'y' * 100) }}", "replace filter"),
    "replace_method": ("{{ ('ab' * 5000).replace('b', 'y' * 1000) }}", "str.replace"),
    "indent_lines": ("{{ ('a\\n' * 5000)|indent(1000) }}", "the indent filter would build"),
    "wordwrap": ("{{ ('x' * 10000)|wordwrap(1, wrapstring='y' * 1000) }}", "wordwrap"),
    "expandtabs": ("{{ ('\t' * 10000).expandtabs(1000) }}", "str.expandtabs"),
    "translate": ("{{ ('x' * 10000).translate({120: 'y' * 1000}) }}", "str.translate"),
    "percent_args": ("{{ '%s%s' % ('x' * 10000, ['y' * 10000] * 49) }}", "formatting with %"),
    "format_filter_args": (
        "{{ '%s%s'|format(['y' * 10000] * 49, ['z' * 10000] * 49) }}",
        "format filter",
    ),
    "batch_fill": ("{{ [1]|batch(1000000000, 'x')|list }}", "linecount 1000000000"),
    "slice_count": ("{{ [1]|slice(100000000)|list }}", "slices 100000000"),
    "tojson_indent": ("{{ {'a': 1}|tojson(indent=1000000) }}", "tojson indent"),
    "concat_doubling": (
        "{% set s = 'x' * 10000 %}" + "{% set s = s ~ s %}" * 7 + "{{ s|length }}",
        "over",
    ),
    "plus_doubling": (
        "{% set s = 'x' * 10000 %}" + "{% set s = s + s %}" * 7 + "{{ s|length }}",
        "adding",
    ),
    "macro_buffer": (
        "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}"
        "{% endmacro %}{% set y = m() %}",
        "built more than",
    ),
    "set_block_buffer": (
        "{% set y %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}",
        "built more than",
    ),
    "printed_list": ("{{ ['x' * 10000] * 40 }}{{ [['x' * 9000] * 40] * 40 }}", "repeating"),
}


def _render(tmp_path: Path, source: str, timeout: float = 2.0) -> str:
    folder = tmp_path / "t" / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.txt").write_text(source, encoding="utf-8")
    env = make_environment(tmp_path, display_root="templates", render_timeout_seconds=timeout)
    return render_template(env, "t/en/x.txt", sample_context("en"))


@pytest.mark.parametrize(("source", "refusal"), list(AMPLIFIERS.values()), ids=list(AMPLIFIERS))
def test_an_operation_that_could_not_fit_is_refused_before_it_runs(
    tmp_path: Path, source: str, refusal: str
) -> None:
    # A generous clock: only a size check can end these within the test's time.
    with pytest.raises(TemplateBudgetError) as info:
        _render(tmp_path, source, timeout=60)
    assert "refused:" in info.value.reason and refusal in info.value.reason
    assert "took longer" not in info.value.reason
    assert info.value.template == "templates/t/en/x.txt" and info.value.line == 1


def test_ordinary_arithmetic_and_text_building_still_work(tmp_path: Path) -> None:
    out = _render(
        tmp_path,
        "{{ 'hello'|replace('l', 'L') }} {{ [1, 2, 3]|join(', ') }} {{ 2 ** 10 }}"
        " {{ 'a' ~ 1 ~ 'b' }} {{ [1] + [2] }} {{ 'ab'|center(6) }}|{{ 'x\ny'|indent(2) }}"
        " {{ {'a': 1}|tojson }} {{ 12345678901234567890 * 98765432109876543210 }}"
        " {{ '-'.join(['a', 'b']) }} {{ ('a b ' * 30)|wordwrap(20)|length }}"
        "{% macro m(n) %}{{ n * 2 }}{% endmacro %} {{ m(21) }} {{ '%05d'|format(42) }}",
    )
    assert out == (
        'heLLo 1, 2, 3 1024 a1b [1, 2]   ab  |x\n  y {"a": 1} '
        "1219326311370217952237463801111263526900 a-b 119 42 00042"
    )


def _copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def test_lint_reports_an_overrun_once_per_set_and_lints_the_other_sets(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    email = templates / "care" / "en" / "email.txt"
    email.write_text(SQUARINGS + "\n" + email.read_text(encoding="utf-8"), encoding="utf-8")
    sms = templates / "care" / "zh-CN" / "sms.txt"
    sms.write_text(BIG_JOIN + "\n" + sms.read_text(encoding="utf-8"), encoding="utf-8")
    issues = lint_templates(templates, display_root="templates", render_timeout_seconds=60)
    errors = [str(i) for i in issues if i.severity == "error"]
    assert len(errors) == 1, errors  # the first overrun of the set, not one per render
    assert errors[0].startswith("templates/care/en/email.txt:1: refused: multiplying")
    assert "the rest of this set is not rendered" in errors[0]
    assert not any("/winback/" in str(i) and i.severity == "error" for i in issues)


def test_render_on_the_command_line_fails_with_one_line(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    sms = templates / "care" / "en" / "sms.txt"
    sms.write_text(BIG_JOIN + "\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[templates]\ndir = "templates"\n', encoding="utf-8")
    result = CliRunner().invoke(
        app, ["--config", str(config), "templates", "render", "care", "--channel", "sms",
         "--locale", "en"]
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and line.endswith(
        "templates/care/en/sms.txt:1: refused: the join filter would build about"
        " 99990000 characters, over the 500000 limit (max_output_bytes)"
    )


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_run_stops_a_set_at_its_first_overrun_and_goes_on_with_the_others(
    engine: Engine, db_url: str, root: Path
) -> None:
    make_config(root, db_url)
    # Fine with lint's sample customer, over the budget with every real one.
    write_templates(
        root,
        html='{% if user.name != "Alex Morgan" %}' + BIG_JOIN + "{% endif %}\n"
        + (ROOT / "tests" / "test_planner.py").read_text().split('EMAIL_HTML = """')[1]
        .split('"""')[0],
    )
    write_templates(root, name="u")
    config_file = root / "config.toml"
    config_file.write_text(
        config_file.read_text()
        + '[[campaigns.variants]]\nname = "w"\ntemplate = "u"\noffer = false\n'
    )
    config = load_config(config_file, environ={})
    for n in range(24):
        add_user(engine, f"u{n:02d}")
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    broken = [r for r in rows.values() if r["template"] == "t"]
    fine = [r for r in rows.values() if r["template"] == "u"]
    assert len(broken) >= 2 and fine
    assert all(r["status"] == "queued" for r in fine)
    assert all((r["status"], r["skip_reason"]) == ("skipped", "template_error") for r in broken)
    assert len({r["last_error"] for r in broken}) == 1
    (note,) = report.notes
    assert note.startswith("templates/t/en/email.html:1: refused: the join filter")
    assert f"{len(broken) - 1} more message(s) skipped" in note


def test_a_budget_error_is_a_template_error() -> None:
    assert issubclass(TemplateBudgetError, TemplateError)
