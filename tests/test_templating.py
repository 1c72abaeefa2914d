"""Rendering: context, locale-aware filters, template names, errors with file and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from campaign.errors import TemplateError
from campaign.templating.context import CONTEXT, build_context, check_plain, sample_context
from campaign.templating.environment import (
    make_environment,
    template_set_exists,
)
from campaign.templating.render import pick_locale, render_message, render_template

REPO_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def render_one(tmp_path: Path, source: str, locale: str = "en", **extra: object) -> str:
    write(tmp_path, {"s/en/t.txt": source})
    env = make_environment(tmp_path, display_root="templates")
    context = sample_context(locale)
    context.update(extra)
    return render_template(env, "s/en/t.txt", context)


def test_money_is_formatted_from_integer_cents_in_the_shop_currency_and_locale(
    tmp_path: Path,
) -> None:
    assert render_one(tmp_path, "{{ 12900|money }}", "zh-CN") == "¥129.00"
    assert render_one(tmp_path, "{{ 12900|money }}", "en") == "CN¥129.00"
    assert render_one(tmp_path, "{{ 5|money('USD') }}", "en") == "$0.05"
    assert render_one(tmp_path, "{{ 500|money('JPY') }}", "en") == "¥500"


def test_money_refuses_floats_so_amounts_never_round(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="integer cents"):
        render_one(tmp_path, "{{ 129.5|money }}")


def test_dates_are_shown_in_the_readers_locale_and_timezone(tmp_path: Path) -> None:
    # 2026-11-14T20:00Z is already the 15th in Shanghai.
    source = "{{ '2026-11-14T20:00:00+00:00'|date }}"
    assert render_one(tmp_path, source, "zh-CN") == "2026年11月15日"
    assert render_one(tmp_path, source, "en") == "November 14, 2026"


def test_percentages_take_whole_percent_points(tmp_path: Path) -> None:
    assert render_one(tmp_path, "{{ coupon.percent_off|percent }}") == "20%"
    assert render_one(tmp_path, "{{ 12.5|percent }}") == "12%"  # babel rounds half to even


def test_html_is_autoescaped_and_text_is_not(tmp_path: Path) -> None:
    write(tmp_path, {"s/en/email.html": "{{ v }}", "s/en/email.txt": "{{ v }}"})
    env = make_environment(tmp_path)
    context = {**sample_context("en"), "v": "<b>&</b>"}
    assert render_template(env, "s/en/email.html", context) == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert render_template(env, "s/en/email.txt", context) == "<b>&</b>"


def test_an_undefined_name_names_the_file_and_line_and_suggests_the_right_one(
    tmp_path: Path,
) -> None:
    with pytest.raises(TemplateError) as info:
        render_one(tmp_path, "Hello\n\n{{ user.first_nme }}")
    assert str(info.value).startswith("templates/s/en/t.txt:3: ")
    assert "(did you mean 'first_name'?)" in str(info.value)
    with pytest.raises(TemplateError) as info:
        render_one(tmp_path, "{{ unsubscribe_ur }}")
    assert str(info.value) == (
        "templates/s/en/t.txt:1: 'unsubscribe_ur' is undefined (did you mean 'unsubscribe_url'?)"
    )


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        render_one(tmp_path, "ok\n{% if user %}\nno end")
    assert info.value.template == "templates/s/en/t.txt"
    assert info.value.line == 3


def test_an_error_inside_the_shared_layout_names_the_layout(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "_layouts/base.html": "<p>\n{{ shop.nam }}</p>{% block body %}{% endblock %}",
            "s/en/email.html": "{% extends '_layouts/base.html' %}{% block body %}x{% endblock %}",
        },
    )
    env = make_environment(tmp_path, display_root="templates")
    with pytest.raises(TemplateError) as info:
        render_template(env, "s/en/email.html", sample_context("en"))
    assert info.value.template == "templates/_layouts/base.html"
    assert info.value.line == 2


@pytest.mark.parametrize(
    "target",
    ["../secret.txt", "/etc/passwd", "other/en/t.txt", "s/../../x", "..\\x", ".hidden"],
)
def test_includes_cannot_leave_the_template_set_or_the_layouts(tmp_path: Path, target: str) -> None:
    write(tmp_path, {"other/en/t.txt": "other set", "secret.txt": "secret"})
    with pytest.raises(TemplateError):
        render_one(tmp_path, f"{{% include '{target}' %}}")


def test_includes_of_siblings_and_layouts_work(tmp_path: Path) -> None:
    write(tmp_path, {"s/en/footer.txt": "foot", "_layouts/sig.txt": "sig"})
    out = render_one(tmp_path, "{% include 'footer.txt' %}+{% include '_layouts/sig.txt' %}")
    assert out == "foot+sig"


def test_template_set_names_from_config_are_plain_folder_names(tmp_path: Path) -> None:
    write(tmp_path, {"winback/en/sms.txt": "x", "_layouts/a.html": ""})
    assert template_set_exists(tmp_path, "winback")
    for bad in ("missing", "_layouts", "../winback", "winback/en", "", "/tmp"):
        assert not template_set_exists(tmp_path, bad)


def test_the_locale_folder_is_chosen_exactly_then_by_language_then_by_default() -> None:
    folders = ["en", "zh-CN"]
    assert pick_locale(folders, "zh_cn", None) == "zh-CN"
    assert pick_locale(folders, "zh-TW", None) == "zh-CN"
    assert pick_locale(folders, "en-GB", None) == "en"
    assert pick_locale(folders, "fr", "zh-CN") == "zh-CN"
    assert pick_locale(folders, "fr", None) is None


def test_a_user_locale_without_templates_falls_back_to_the_shop_default() -> None:
    env = make_environment(REPO_TEMPLATES)
    rendered = render_message(
        env, "care", "sms", "fr-FR", sample_context("fr-FR"), default_locale="zh-CN"
    )
    assert "回T退订" in rendered.text


def test_the_shipped_sets_render_email_with_subject_html_and_text() -> None:
    env = make_environment(REPO_TEMPLATES)
    rendered = render_message(env, "winback", "email", "en", sample_context("en"))
    assert rendered.subject == "Alex, a 20% thank-you, just for you"
    assert rendered.html is not None and "CB-7KQ4M9XH2P" in rendered.html
    assert "1 Example Road, Example City" in rendered.html
    assert "Unsubscribe: https://shop.example/u/sample-token" in rendered.text


def test_the_care_message_offers_no_discount() -> None:
    env = make_environment(REPO_TEMPLATES)
    for locale in ("en", "zh-CN"):
        rendered = render_message(
            env, "care", "email", locale, sample_context(locale, with_coupon=False)
        )
        assert "%" not in rendered.text and "CB-" not in (rendered.html or "")


def test_contexts_are_plain_data_only() -> None:
    check_plain(sample_context("en"))
    check_plain({"a": [1, "x", Decimal("1.5"), None, True, {"b": (2.5,)}]})

    class Row:
        name = "x"

    for bad in ({"user": Row()}, {"when": object()}, {1: "x"}):
        with pytest.raises(TypeError):
            check_plain(bad)


def test_rendering_refuses_a_context_holding_objects() -> None:
    env = make_environment(REPO_TEMPLATES)
    context = sample_context("en")
    context["user"] = type("User", (), {"first_name": "x"})()
    with pytest.raises(TemplateError, match="not plain data"):
        render_message(env, "care", "sms", "en", context)


def test_built_contexts_have_exactly_the_documented_fields() -> None:
    context = sample_context("en")
    assert set(context) == set(CONTEXT)
    for name, (_, fields) in CONTEXT.items():
        value = context[name]
        if fields is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            assert set(item) == set(fields), name


def test_build_context_drops_extra_product_keys_and_derives_first_name() -> None:
    context = build_context(
        user={"id": 7, "name": "Ada Lovelace"},
        products=[{"id": "p1", "name": "n", "product_id": 3, "score": 0.5}],
        coupon=None,
        campaign={"name": "care", "variant": "a"},
        shop={"name": "S", "currency": "EUR"},
        unsubscribe_url="u",
        locale="en",
    )
    assert context["user"]["first_name"] == "Ada" and context["user"]["id"] == "7"
    assert "score" not in context["products"][0]


def test_the_templates_folder_has_one_rule(tmp_path: Path) -> None:
    from campaign.config import load_config
    from campaign.errors import ConfigError

    config = tmp_path / "config.toml"
    config.write_text("")
    # Not configured: the shipped sets, until a templates/ folder sits beside the config.
    assert load_config(config).templates_folder() == REPO_TEMPLATES
    (tmp_path / "templates").mkdir()
    assert load_config(config).templates_folder() == tmp_path / "templates"
    # Configured: exactly that folder, and a mistyped one is a config error.
    (tmp_path / "mine").mkdir()
    config.write_text('[templates]\ndir = "mine"\n')
    assert load_config(config).templates_folder() == tmp_path / "mine"
    config.write_text('[templates]\ndir = "tempaltes"\n')
    with pytest.raises(ConfigError, match=r"templates\.dir: .*tempaltes does not exist"):
        load_config(config).templates_folder()
    (tmp_path / "afile").write_text("")
    config.write_text('[templates]\ndir = "afile"\n')
    with pytest.raises(ConfigError, match="is not a folder"):
        load_config(config).templates_folder()


def test_a_mistyped_templates_folder_stops_lint_and_run_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "config.toml").write_text(
        '[templates]\ndir = "tempaltes"\n[channels.email]\nkind = "file"\npath = "out"\n'
        '[[campaigns]]\nname = "winback"\n'
        '[[campaigns.variants]]\nname = "coupon"\ntemplate = "winback"\n'
    )
    for args in (["templates", "lint"], ["run", "winback", "--dry-run"]):
        done = subprocess.run([sys.executable, "-m", "campaign", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "templates.dir" in lines[0] and "tempaltes" in lines[0], (
            args, done.stderr)


def test_templates_init_copies_every_default_and_never_overwrites_an_edit(
    tmp_path: Path,
) -> None:
    from campaign.errors import InputError
    from campaign.shipped import templates_folder
    from campaign.templating.defaults import copy_default_templates

    copied = copy_default_templates(tmp_path / "mine")
    shipped = sorted(
        p.relative_to(templates_folder()) for p in templates_folder().rglob("*") if p.is_file()
    )
    assert sorted(
        p.relative_to(tmp_path / "mine") for p in (tmp_path / "mine").rglob("*") if p.is_file()
    ) == shipped
    assert copied.files == len(shipped) and copied.template_sets == ["care", "winback"]
    edited = tmp_path / "mine" / "winback" / "en" / "sms.txt"
    edited.write_text("my edit {{ unsubscribe_url }}")
    (tmp_path / "mine" / "care" / "en" / "email.txt").unlink()
    with pytest.raises(InputError, match="already exists"):
        copy_default_templates(tmp_path / "mine")
    assert edited.read_text() == "my edit {{ unsubscribe_url }}"
    assert not (tmp_path / "mine" / "care" / "en" / "email.txt").exists()  # nothing copied
    (tmp_path / "a-file").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        copy_default_templates(tmp_path / "a-file")
