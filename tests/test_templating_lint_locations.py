"""Lint points at the source ``file:line``, finds every mistake of a set at once, and
``templates render`` fails on what lint calls an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaign.cli import app
from campaign.templating.lint import LintIssue, lint_templates

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def errors(folder: Path, **kwargs: object) -> list[str]:
    issues: list[LintIssue] = lint_templates(folder, display_root="templates", **kwargs)  # type: ignore[arg-type]
    return [str(i) for i in issues if i.severity == "error"]


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` once; returns the 1-based line where it was."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def line_of(path: Path, text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines().index(text) + 1


def test_an_unclosed_tag_is_reported_at_its_source_line(templates: Path) -> None:
    email = templates / "care/en/email.html"
    line = edit(email, '<p style="margin:0;">Take care,', '<span><p style="margin:0;">Take care,')
    found = [f for f in errors(templates) if "<span>" in f]
    assert found, errors(templates)
    # The tag is closed by the layout's </td>; both places are named by file and line.
    layout = templates / "_layouts/email.html"
    closing = line_of(layout, "{% block content %}{% endblock %}") + 1
    assert found == [
        f"templates/_layouts/email.html:{closing}: </td> closes <span> opened at"
        f" templates/care/en/email.html:{line}"
    ]


def test_a_problem_inside_one_file_names_that_file_and_both_lines(templates: Path) -> None:
    email = templates / "care/en/email.html"
    text = email.read_text(encoding="utf-8")
    lines = text.splitlines()
    take_care = next(i for i, line in enumerate(lines) if "Take care," in line)
    lines.insert(take_care, "<div>")
    lines.insert(take_care + 2, "<b>bold</i></div>")
    email.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = [f for f in errors(templates) if "care/en/email.html" in f]
    assert f"templates/care/en/email.html:{take_care + 3}: </i> closes nothing" in found
    assert (
        f"templates/care/en/email.html:{take_care + 3}: </div> closes <b> opened on line"
        f" {take_care + 3}"
    ) in found
    assert not any("rendered line" in f for f in found)


def test_a_syntax_error_in_one_file_does_not_hide_the_other_checks(templates: Path) -> None:
    edit(templates / "care/en/email.txt", "Take care,", "{% endfor %}Take care,")
    edit(templates / "care/en/sms.txt", "miss you!", "miss you! " + "Really. " * 60)
    found = errors(templates)
    assert any(f.startswith("templates/care/en/email.txt:") and "endfor" in f for f in found)
    assert any(f.startswith("templates/care/en/sms.txt: SMS is") for f in found), found


def test_an_included_file_is_checked_and_not_called_unused(templates: Path) -> None:
    edit(templates / "care/en/sms.txt", "miss you!", 'miss you! {% include "sign.txt" %}')
    (templates / "care/en/sign.txt").write_text("{{ shop.nam }}\n", encoding="utf-8")
    issues = lint_templates(templates, display_root="templates")
    assert not any("sign.txt" in str(i) and "never used" in str(i) for i in issues)
    assert any(
        str(i).startswith("templates/care/en/sign.txt:1: 'shop.nam' is undefined") for i in issues
    ), [str(i) for i in issues]


def test_an_unknown_tag_gets_a_did_you_mean(templates: Path) -> None:
    edit(templates / "care/en/sms.txt", "miss you!", 'miss you! {% incldue "x.txt" %}')
    (found,) = [f for f in errors(templates) if "care/en/sms.txt" in f]
    assert "unknown tag 'incldue' (did you mean 'include'?)" in found


def test_an_empty_subject_is_reported_once(templates: Path) -> None:
    (templates / "care/en/subject.txt").write_text("{# nothing #}\n", encoding="utf-8")
    found = errors(templates, offer_usage={"care": frozenset({False})})
    assert found == ["templates/care/en/subject.txt:1: the subject is empty"]


# -- templates render --------------------------------------------------------------


def _render(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(
        '[templates]\ndir = "templates"\n[shop]\ndefault_locale = "zh-CN"\n', encoding="utf-8"
    )
    return runner.invoke(app, ["--config", str(config), "templates", "render", *args])


def test_render_exits_1_on_an_sms_of_five_segments(templates: Path) -> None:
    edit(templates / "care/en/sms.txt", "miss you!", "miss you! " + "Really. " * 80)
    result = _render(templates.parent, "care", "--channel", "sms", "--locale", "en")
    assert result.exit_code == 1
    assert "Really." in result.stdout  # the preview is still shown
    assert "5 segment(s); the limit is 2 (max_sms_segments)" in result.stderr


def test_render_exits_1_on_an_email_without_unsubscribe_link(templates: Path) -> None:
    edit(templates / "care/en/email.txt", "{{ unsubscribe_url }}", "")
    result = _render(templates.parent, "care", "--locale", "en")
    assert result.exit_code == 1
    assert "templates/care/en/email.txt: no unsubscribe link" in result.stderr


def test_render_of_the_shipped_sets_exits_0(templates: Path) -> None:
    for args in (("winback",), ("care", "--channel", "sms", "--locale", "en")):
        result = _render(templates.parent, *args)
        assert result.exit_code == 0, result.output


def test_an_unknown_locale_is_refused_with_the_available_ones(templates: Path) -> None:
    result = _render(templates.parent, "winback", "--locale", "fr")
    assert result.exit_code == 1
    assert "--locale: template set 'winback' has no 'fr' folder (available: en, zh-CN)" in (
        result.stderr
    )
    same_language = _render(templates.parent, "winback", "--locale", "en-GB")
    assert same_language.exit_code == 0 and "Hi Alex" in same_language.stdout
