"""Copy the shipped template sets out, for marketers to edit (``campaign templates init``).

The shipped sets live inside the installed package, which nobody should edit (an
upgrade would overwrite it). A copy in a folder of the shop's own, named by
``[templates] dir``, is what marketers change and what lint, preview and run then read.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from campaign.errors import InputError
from campaign.shipped import templates_folder


@dataclass(frozen=True)
class CopiedTemplates:
    """What :func:`copy_default_templates` wrote."""

    destination: Path
    files: int
    template_sets: list[str]


def _shipped_files(source: Path) -> list[Path]:
    """Every regular file under ``source``, relative to it, sorted."""
    return sorted(
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts
    )


def copy_default_templates(destination: Path, source: Path | None = None) -> CopiedTemplates:
    """Copy every shipped template file into ``destination`` (created if missing).

    Nothing is overwritten: when any file to copy already exists there, nothing is
    copied and :class:`InputError` names it, so a marketer's edits are never lost.
    """
    from campaign.templating.environment import list_template_sets

    source = source or templates_folder()
    files = _shipped_files(source)
    if destination.exists() and not destination.is_dir():
        raise InputError(str(destination), "exists and is not a folder")
    taken = [relative for relative in files if (destination / relative).exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise InputError(
            str(destination / taken[0]),
            f"already exists{more}; nothing copied (choose an empty folder, or move "
            "your edited copy away first)",
        )
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
    return CopiedTemplates(destination, len(files), list_template_sets(destination))
