"""Lint's findings for a templates folder, kept while none of its files changed.

Every run, preview and console audience view lints the template sets it will use
first (:meth:`campaign.planner.content.ContentBuilder.check_templates`): compiling and
sample-rendering every file was half a second of each audience page on the demo shop,
for the same unchanged files. The findings depend only on the files and the limits,
so they are kept per folder, limits and a fingerprint of every file under the folder
(its path, size and modification time in nanoseconds): saving a file from the editor,
or any edit on disk, changes the fingerprint and the folder is linted again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from campaign.templating.lint import LintIssue, lint_templates

_SIZE = 8
_CACHE: dict[tuple[object, ...], list[LintIssue]] = {}
_LOCK = threading.Lock()


def folder_fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under ``folder``: relative path, size, modification time (ns)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except OSError:  # removed while walking: the next ask sees the change
                continue
            found.append((os.path.relpath(path, folder), info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def lint_templates_cached(
    templates_dir: Path,
    *,
    display_root: str | None,
    max_sms_segments: int,
    max_subject_chars: int,
    render_timeout_seconds: float,
    max_output_bytes: int,
    stop_words: Sequence[str] | None,
) -> list[LintIssue]:
    """:func:`campaign.templating.lint.lint_templates` with these arguments, or its
    findings of an earlier call on the same, unchanged files."""
    key = (str(Path(templates_dir).resolve()), display_root, max_sms_segments,
           max_subject_chars, render_timeout_seconds, max_output_bytes,
           tuple(stop_words) if stop_words is not None else None,
           folder_fingerprint(Path(templates_dir)))
    with _LOCK:
        if key in _CACHE:
            return list(_CACHE[key])
    issues = lint_templates(
        templates_dir, display_root=display_root, max_sms_segments=max_sms_segments,
        max_subject_chars=max_subject_chars, render_timeout_seconds=render_timeout_seconds,
        max_output_bytes=max_output_bytes, stop_words=stop_words)
    with _LOCK:
        if len(_CACHE) >= _SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = list(issues)
    return issues
