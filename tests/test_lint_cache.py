"""Lint's findings are kept while a templates folder's files are unchanged, and a
changed file is linted again."""

from __future__ import annotations

import os
from pathlib import Path

import campaign.templating.lint_cache as lint_cache
from campaign.templating.defaults import copy_default_templates

LIMITS = {"display_root": "templates", "max_sms_segments": 3, "max_subject_chars": 80,
          "render_timeout_seconds": 2.0, "max_output_bytes": 1_000_000, "stop_words": None}


def test_unchanged_files_are_linted_once_and_an_edit_is_seen(tmp_path: Path,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "templates"
    copy_default_templates(folder)
    calls = []
    real = lint_cache.lint_templates

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(lint_cache, "lint_templates", counted)
    first = lint_cache.lint_templates_cached(folder, **LIMITS)
    again = lint_cache.lint_templates_cached(folder, **LIMITS)
    assert len(calls) == 1 and again == first
    assert not any(i.severity == "error" for i in first)
    text = folder / "winback" / "en" / "email.txt"
    text.write_text(text.read_text(encoding="utf-8") + "\n{{ frist_name }}\n", encoding="utf-8")
    stat = text.stat()
    os.utime(text, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    edited = lint_cache.lint_templates_cached(folder, **LIMITS)
    assert len(calls) == 2
    assert any("frist_name" in i.message for i in edited)
    # Other limits are another question.
    lint_cache.lint_templates_cached(folder, **{**LIMITS, "max_subject_chars": 20})
    assert len(calls) == 3
