"""Lint: every shipped template is clean, and each kind of mistake is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign.templating.context import sample_context
from campaign.templating.environment import (
    available_locales,
    list_template_sets,
    make_environment,
)
from campaign.templating.lint import LintIssue, lint_templates, sms_segments
from campaign.templating.render import render_message

REPO_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SHIPPED = [
    (name, locale)
    for name in list_template_sets(REPO_TEMPLATES)
    for locale in available_locales(REPO_TEMPLATES, name)
]


def errors(issues: list[LintIssue]) -> list[str]:
    return [str(i) for i in issues if i.severity == "error"]


def test_the_shipped_templates_have_no_lint_errors() -> None:
    issues = lint_templates(REPO_TEMPLATES, offer_usage={"care": frozenset({False})})
    assert errors(issues) == []
    # The only warnings: the coupon set is unsafe for a variant without an offer.
    assert all("needs a coupon" in i.message and "/winback/" in i.path for i in issues)


def test_the_default_sets_exist_in_both_locales() -> None:
    assert {("winback", "en"), ("winback", "zh-CN"), ("care", "en"), ("care", "zh-CN")} <= set(
        SHIPPED
    )


@pytest.mark.parametrize(("template_set", "locale"), SHIPPED)
@pytest.mark.parametrize("medium", ["email", "sms"])
def test_every_shipped_template_renders_with_the_sample_context(
    template_set: str, locale: str, medium: str
) -> None:
    env = make_environment(REPO_TEMPLATES)
    context = sample_context(locale, with_coupon=template_set != "care")
    rendered = render_message(env, template_set, medium, locale, context)  # type: ignore[arg-type]
    assert rendered.text.strip()
    if medium == "email":
        assert rendered.subject and rendered.html
        assert context["unsubscribe_url"] in rendered.html
        assert context["shop"]["postal_address"] in rendered.html
    else:
        assert sms_segments(rendered.text).segments <= 2


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of the shipped templates to break."""
    target = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, target)
    return target


def lint(folder: Path, **kwargs: object) -> list[str]:
    return errors(lint_templates(folder, display_root="templates", **kwargs))  # type: ignore[arg-type]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_misspelt_attribute_is_reported_with_file_line_and_suggestion(templates: Path) -> None:
    edit(templates / "winback/en/email.html", "Hi {{ user.first_name", "Hi {{ user.first_nme")
    assert lint(templates) == [
        "templates/winback/en/email.html:5: 'user.first_nme' is undefined"
        " (did you mean 'first_name'?)"
    ]


def test_a_misspelt_name_is_reported_even_inside_an_untaken_branch(templates: Path) -> None:
    edit(
        templates / "care/en/email.txt",
        "{{ unsubscribe_url }}",
        "{% if false %}{{ unsubscribe_link }}{% endif %}{{ unsubscribe_url }}",
    )
    assert lint(templates) == [
        "templates/care/en/email.txt:23: 'unsubscribe_link' is undefined"
        " (did you mean 'unsubscribe_url'?)"
    ]


def test_a_misspelt_product_field_in_a_loop_is_reported(templates: Path) -> None:
    edit(templates / "care/zh-CN/email.txt", "{{ product.reason }}", "{{ product.reasn }}")
    found = lint(templates)
    assert len(found) == 1 and "'product.reasn' is undefined (did you mean 'reason'?)" in found[0]


def test_an_unknown_filter_is_reported_with_a_suggestion(templates: Path) -> None:
    edit(templates / "care/en/sms.txt", "{{ shop.url }}", "{{ 100|monye }}")
    found = lint(templates)
    assert len(found) == 1
    assert found[0].startswith("templates/care/en/sms.txt:1: ")
    assert "no filter named 'monye' (did you mean 'money'?)" in found[0]


def test_a_syntax_error_is_reported_with_its_line(templates: Path) -> None:
    path = templates / "care/en/email.txt"
    line = path.read_text(encoding="utf-8").splitlines().index("Take care,") + 1
    edit(path, "Take care,", "{% endfor %}Take care,")
    found = lint(templates)
    assert len(found) == 1
    assert found[0].startswith(f"templates/care/en/email.txt:{line}: ")
    assert "endfor" in found[0]


def test_a_marketing_email_without_an_unsubscribe_link_fails(templates: Path) -> None:
    edit(templates / "_layouts/email.html", 'href="{{ unsubscribe_url }}"', 'href="{{ shop.url }}"')
    edit(templates / "care/en/email.txt", "Unsubscribe: {{ unsubscribe_url }}", "")
    found = lint(templates)
    assert "templates/care/en/email.html: no unsubscribe link:" in "\n".join(found)
    assert "templates/care/en/email.txt: no unsubscribe link" in "\n".join(found)


def test_a_marketing_email_without_the_postal_address_fails(templates: Path) -> None:
    edit(templates / "_layouts/email.html", "{{ shop.postal_address }}", "")
    assert "templates/winback/zh-CN/email.html: no postal address" in "\n".join(lint(templates))


def test_unbalanced_html_is_reported(templates: Path) -> None:
    edit(templates / "care/en/email.html", '<p style="margin:0;">Take care,', "<div><p>Take care,")
    found = lint(templates)
    assert any("care/en/email.html" in f and "<div>" in f for f in found)


def test_an_sms_over_the_segment_limit_fails(templates: Path) -> None:
    edit(templates / "care/zh-CN/sms.txt", "好久不见", "好久不见" * 40)
    found = lint(templates)
    assert len(found) == 1
    assert "templates/care/zh-CN/sms.txt: SMS is" in found[0] and "UCS-2" in found[0]
    assert lint(templates, max_sms_segments=5) == []


def test_a_stray_curly_quote_in_an_english_sms_is_a_warning(templates: Path) -> None:
    edit(templates / "care/en/sms.txt", "miss you!", "miss you’re!")
    issues = lint_templates(templates, display_root="templates")
    assert any(i.severity == "warning" and "force UCS-2" in i.message for i in issues)


def test_a_set_used_without_an_offer_must_render_without_a_coupon(templates: Path) -> None:
    found = lint(templates, offer_usage={"winback": frozenset({True, False})})
    assert found and all("coupon is none" in f for f in found)
    assert lint(templates, offer_usage={"winback": frozenset({True})}) == []


def test_a_missing_email_part_is_reported(templates: Path) -> None:
    (templates / "care/en/email.txt").unlink()
    assert lint(templates) == ["templates/care/en: email is missing email.txt"]


def test_an_empty_subject_is_an_error(templates: Path) -> None:
    (templates / "care/en/subject.txt").write_text("{# nothing #}\n", encoding="utf-8")
    assert lint(templates) == ["templates/care/en/subject.txt:1: the subject is empty"]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("好" * 70, "UCS-2", 70, 1),
        ("好" * 71, "UCS-2", 71, 2),
        ("a" * 69 + "’", "UCS-2", 70, 1),
        ("😀" * 35, "UCS-2", 70, 1),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2_limits(
    text: str, encoding: str, units: int, segments: int
) -> None:
    info = sms_segments(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_an_sms_opt_out_instruction_must_name_a_word_the_inbound_parser_honours(
    templates: Path,
) -> None:
    # "Reply NO" is no stop word: a reader who follows it would never be unsubscribed.
    edit(templates / "care/en/sms.txt", "Reply STOP to opt out", "Reply NO to opt out")
    found = lint(templates)
    assert len(found) == 1 and "'NO' is not a stop word" in found[0]
    assert "templates/care/en/sms.txt" in found[0]
    # Honoured once the shop's configured list has it.
    assert lint(templates, stop_words=("STOP", "NO", "T")) == []


def test_a_chinese_reply_code_must_be_honoured_too(templates: Path) -> None:
    edit(templates / "care/zh-CN/sms.txt", "回T退订", "回X退订")
    found = lint(templates)
    assert len(found) == 1 and "'X' is not a stop word" in found[0]
    # The shipped "回T退订" is honoured by the defaults, and not by a list without T.
    edit(templates / "care/zh-CN/sms.txt", "回X退订", "回T退订")
    assert lint(templates) == []
    assert any("'T'" in f for f in lint(templates, stop_words=("STOP", "退订")))


def test_a_bare_opt_out_word_without_an_instruction_is_no_opt_out(templates: Path) -> None:
    edit(templates / "care/zh-CN/sms.txt", "回T退订", "退订")
    issues = lint_templates(templates, display_root="templates")
    assert any(
        i.severity == "warning" and "no opt-out" in i.message and "care/zh-CN" in i.path
        for i in issues
    )
