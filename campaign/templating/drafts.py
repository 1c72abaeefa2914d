"""Unsaved edits: lint and render a template file's draft exactly as if it were saved.

The console lints as a marketer types. Rather than a second, lookalike lint, the draft
is written into a private copy of its locale folder (with ``_layouts/``; every set for
a layout) and :func:`~campaign.templating.lint.lint_templates` runs on that copy with
the real folder's display name, so every finding is the same line ``campaign templates
lint`` would print once the file is saved. The copy is read through the loader (plain
files only, nothing followed) and removed afterwards.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from campaign.templating.budget import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_RENDER_TIMEOUT_SECONDS
from campaign.templating.issues import LintIssue
from campaign.templating.lint import (
    DEFAULT_MAX_SMS_SEGMENTS,
    DEFAULT_MAX_SUBJECT_CHARS,
    lint_templates,
)
from campaign.templating.loader import (
    LAYOUTS_DIR,
    check_template_name,
    list_template_sets,
    read_template_file,
)


def _plain_files(root: Path, folder: str) -> list[str]:
    """Names (``set/locale/file``) of the plain, visible files under ``root/folder``."""
    found: list[str] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(root / current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                stack.append(f"{current}/{entry.name}")
            elif stat.S_ISREG(mode):
                found.append(f"{current}/{entry.name}")
    return sorted(found)


@contextmanager
def draft_folder(templates_dir: Path, name: str, source: str) -> Iterator[Path]:
    """A temporary templates folder holding ``name``'s locale folder (every set when
    ``name`` is a layout) and ``_layouts/``, with ``name``'s text replaced by ``source``.

    Raises:
        TemplateNotFound: ``name`` is not a template name.
    """
    check_template_name(name)
    root = Path(os.path.realpath(templates_dir))
    parts = name.split("/")
    folders = [LAYOUTS_DIR]
    if parts[0] == LAYOUTS_DIR:
        folders += list_template_sets(root)
    elif len(parts) >= 3:
        # Only the edited locale: the other locales' findings cannot change.
        folders.append(f"{parts[0]}/{parts[1]}")
    else:
        folders.append(parts[0])
    with tempfile.TemporaryDirectory(prefix="campaign-draft-") as scratch:
        copy = Path(scratch)
        for folder in dict.fromkeys(folders):
            for relative in _plain_files(root, folder):
                try:
                    text, _ = read_template_file(root, relative)
                except Exception:  # noqa: BLE001 - lint of the real folder reports it
                    continue
                target = copy / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
        yield copy


def lint_draft(
    templates_dir: Path,
    name: str,
    source: str,
    *,
    display_root: str,
    max_sms_segments: int = DEFAULT_MAX_SMS_SEGMENTS,
    max_subject_chars: int = DEFAULT_MAX_SUBJECT_CHARS,
    offer_usage: dict[str, frozenset[bool]] | None = None,
    render_timeout_seconds: float = DEFAULT_RENDER_TIMEOUT_SECONDS,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    stop_words: Sequence[str] | None = None,
) -> list[LintIssue]:
    """Lint's findings for ``name``'s locale folder (every set for a layout) as if
    ``source`` were saved as ``name``.

    Paths read ``<display_root>/<set>/<locale>/<file>``, as ``campaign templates lint``
    prints them. Writes nothing under ``templates_dir``.
    """
    with draft_folder(templates_dir, name, source) as folder:
        return lint_templates(
            folder,
            max_sms_segments=max_sms_segments,
            max_subject_chars=max_subject_chars,
            display_root=display_root,
            offer_usage=offer_usage,
            render_timeout_seconds=render_timeout_seconds,
            max_output_bytes=max_output_bytes,
            stop_words=stop_words,
        )
