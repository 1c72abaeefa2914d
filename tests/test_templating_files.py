"""Template files are plain files inside the templates folder: links, devices and FIFOs
are refused by the loader, reported by lint, and never reach a message.

The case that started it: ``footer.txt`` linked to ``/proc/self/environ`` and included
from ``email.txt`` put every secret of the server's environment into customer emails.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from jinja2 import TemplateNotFound
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.errors import TemplateError
from campaign.templating.context import sample_context
from campaign.templating.environment import (
    TemplateFileRefused,
    list_template_sets,
    make_environment,
    read_template_file,
)
from campaign.templating.lint import lint_templates
from campaign.templating.render import render_message

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-token-that-must-never-be-mailed"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates whose care/en email includes ``footer.txt``."""
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    email = target / "care" / "en" / "email.txt"
    email.write_text(
        email.read_text(encoding="utf-8") + '{% include "footer.txt" %}\n', encoding="utf-8"
    )
    (tmp_path / "outside.txt").write_text(f"TOKEN={SECRET}\n", encoding="utf-8")
    return target


def _render(templates: Path) -> str:
    env = make_environment(templates, display_root="templates")
    rendered = render_message(
        env, "care", "email", "en", sample_context("en", with_coupon=False)
    )
    return rendered.text


def _lint(templates: Path) -> list[str]:
    return [
        str(i) for i in lint_templates(templates, display_root="templates")
        if i.severity == "error"
    ]


def test_a_plain_footer_is_included(templates: Path) -> None:
    (templates / "care/en/footer.txt").write_text("-- the shop team\n", encoding="utf-8")
    assert "-- the shop team" in _render(templates)
    assert _lint(templates) == []


def test_a_footer_linked_to_the_process_environment_never_reaches_a_message(
    templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGN_TEST_PLANTED_SECRET", SECRET)
    (templates / "care/en/footer.txt").symlink_to("/proc/self/environ")
    with pytest.raises(TemplateError) as info:
        _render(templates)
    assert SECRET not in str(info.value)
    assert info.value.template == "templates/care/en/email.txt"  # where it is included
    assert "care/en/footer.txt is a symbolic link" in info.value.reason
    found = _lint(templates)
    assert (
        "templates/care/en/footer.txt: is a symbolic link (to /proc/self/environ): template"
        " files must be plain files inside the templates folder, never read"
    ) in found
    assert any(line.startswith("templates/care/en/email.txt:") for line in found)
    assert not any(SECRET in line for line in found)


@pytest.mark.parametrize(
    "target", ["outside", "inside"], ids=["link-outside", "link-inside"]
)
def test_a_linked_file_is_refused_wherever_it_points(templates: Path, target: str) -> None:
    link = templates / "care/en/footer.txt"
    if target == "outside":
        link.symlink_to(templates.parent / "outside.txt")
    else:
        # A link inside the folder, even to a sibling, is refused too: one rule, no
        # judging where a link leads (its target may change after the check).
        link.symlink_to("sms.txt")
    with pytest.raises(TemplateError, match="footer.txt is a symbolic link"):
        _render(templates)
    assert any("care/en/footer.txt: is a symbolic link" in line for line in _lint(templates))


def test_a_linked_template_of_its_own_name_is_refused(templates: Path) -> None:
    subject = templates / "care/en/subject.txt"
    (templates.parent / "subject.txt").write_text(SECRET, encoding="utf-8")
    subject.unlink()
    subject.symlink_to(templates.parent / "subject.txt")
    with pytest.raises(TemplateError, match="subject.txt is a symbolic link"):
        _render(templates)
    found = _lint(templates)
    assert any("care/en/subject.txt: is a symbolic link" in line for line in found)
    assert not any("missing" in line for line in found)  # present, but refused


def test_a_linked_folder_is_refused_at_any_level(templates: Path) -> None:
    (templates / "mirror").symlink_to(templates / "care")  # a whole set
    (templates / "care" / "fr").symlink_to(templates / "care" / "en")  # a locale
    assert "mirror" not in list_template_sets(templates)
    env = make_environment(templates, display_root="templates")
    for name in ("mirror/en/sms.txt", "care/fr/sms.txt"):
        with pytest.raises(TemplateFileRefused, match="which is a symbolic link"):
            env.get_template(name)
    found = _lint(templates)
    assert any(line.startswith("templates/mirror: is a symbolic link") for line in found)
    assert any(line.startswith("templates/care/fr: is a symbolic link") for line in found)


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_without_blocking(templates: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: lint and render must not.
    os.mkfifo(templates / "care/en/footer.txt")
    with pytest.raises(TemplateError, match="footer.txt is a FIFO"):
        _render(templates)
    assert "templates/care/en/footer.txt: is a FIFO: template files must be plain files" in (
        "\n".join(_lint(templates))
    )


def test_a_device_is_refused(templates: Path) -> None:
    device = templates / "care/en/footer.txt"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
    except PermissionError:
        pytest.skip("creating a device file needs CAP_MKNOD (CI runs as root)")
    with pytest.raises(TemplateError, match="footer.txt is a device"):
        _render(templates)
    assert any("care/en/footer.txt: is a device" in line for line in _lint(templates))


@pytest.mark.parametrize(
    "include",
    [
        "../../outside.txt",
        "../en/footer.txt",
        "care/../../outside.txt",
        "/etc/passwd",
        "..\\\\..\\\\outside.txt",
        "_layouts/../../outside.txt",
    ],
)
def test_parent_paths_in_include_names_are_refused(templates: Path, include: str) -> None:
    email = templates / "care/en/email.txt"
    email.write_text(
        email.read_text(encoding="utf-8").replace('"footer.txt"', f'"{include}"'),
        encoding="utf-8",
    )
    with pytest.raises(TemplateError) as info:
        _render(templates)
    assert SECRET not in str(info.value)
    assert any("care/en/email.txt" in line for line in _lint(templates))


def test_the_reader_refuses_traversal_and_oversized_files(tmp_path: Path) -> None:
    (tmp_path / "s" / "en").mkdir(parents=True)
    (tmp_path / "s" / "en" / "big.txt").write_text("x" * 2_000, encoding="utf-8")
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    with pytest.raises(TemplateNotFound):
        read_template_file(tmp_path / "s", "../secret.txt")
    with pytest.raises(TemplateNotFound):
        read_template_file(tmp_path, "s/en/missing.txt")
    with pytest.raises(TemplateFileRefused, match="larger than 1000 bytes"):
        read_template_file(tmp_path, "s/en/big.txt", max_bytes=1_000)
    text, _ = read_template_file(tmp_path, "s/en/big.txt")
    assert text == "x" * 2_000


def test_the_templates_folder_itself_may_be_a_link(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "templates", tmp_path / "real")
    (tmp_path / "current").symlink_to(tmp_path / "real")
    env = make_environment(tmp_path / "current", display_root="templates")
    assert render_message(env, "care", "sms", "en", sample_context("en")).text
    assert _lint(tmp_path / "current") == []


def test_lint_on_the_command_line_fails_on_a_linked_footer(templates: Path) -> None:
    (templates / "care/en/footer.txt").symlink_to("/proc/self/environ")
    config = templates.parent / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///unused.db"\n[templates]\ndir = "templates"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["--config", str(config), "templates", "lint"])
    assert result.exit_code == 1
    assert "footer.txt: is a symbolic link (to /proc/self/environ)" in result.stdout
