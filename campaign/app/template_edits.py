"""The console's template editor: the files of each set, a draft's live lint and
preview, saving (lint first, refuse on an error), versions, diffs and reverts.

The lint and the preview are those of :mod:`campaign.app.templates`, the code behind
``campaign templates lint|render``.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from campaign.app.templates import (
    Preview,
    UserContexts,
    environment,
    lint_options,
    render_preview,
)
from campaign.common.errors import CampaignError, InputError, NotFound, TemplateError
from campaign.config import SHIPPED_TEMPLATES_DIR, Config
from campaign.db import console as store
from campaign.templating.environment import (
    available_locales,
    display_root_for,
    list_template_sets,
    template_set_exists,
)
from campaign.templating.issues import LintIssue
from campaign.templating.render import FILES

# Written when a file is saved for the first time: what was on disk before.
ON_DISK_NOTE = "on disk before the first save"



@dataclass(frozen=True)
class TemplateSet:
    """One template set: its locales and, per locale, its files (``en`` → names)."""

    name: str
    files: dict[str, list[str]]


def template_sets(config: Config) -> list[TemplateSet]:
    """Every template set of the configured folder with its locales' files; read-only."""
    folder = config.templates_folder()
    found = []
    for name in list_template_sets(folder):
        files = {}
        for locale in available_locales(folder, name):
            here = folder / name / locale
            files[locale] = sorted(
                p.name for p in here.iterdir()
                if not p.name.startswith(".") and p.is_file() and not p.is_symlink()
            )
        found.append(TemplateSet(name, files))
    return found


def editable(config: Config) -> bool:
    """Whether the configured folder may be written (never the shipped sets)."""
    return config.templates_folder().resolve() != SHIPPED_TEMPLATES_DIR.resolve()


def _check_name(config: Config, name: str) -> str:
    """``name`` if it names a file of a set (``set/locale/file``) or of ``_layouts/``.

    Raises:
        InputError: anything else (a path outside the folder, ``..``, a hidden name).
    """
    from jinja2 import TemplateNotFound

    from campaign.templating.environment import LAYOUTS_DIR, check_template_name

    parts = name.split("/")
    try:
        check_template_name(name)
    except TemplateNotFound:
        raise InputError(name, "not a template file name (<set>/<locale>/<file>)") from None
    folder = config.templates_folder()
    layout = len(parts) == 2 and parts[0] == LAYOUTS_DIR
    if not layout and not (len(parts) == 3 and template_set_exists(folder, parts[0])):
        raise InputError(name, "not a template file name (<set>/<locale>/<file>)")
    return name


def read_template(config: Config, name: str) -> str:
    """The saved text of template file ``name``; plain files only, nothing followed.

    Raises:
        InputError: a bad name. NotFound: no such file. TemplateError: refused (a link,
        a FIFO, too large).
    """
    from jinja2 import TemplateNotFound

    from campaign.templating.environment import TemplateFileRefused, read_template_file

    _check_name(config, name)
    try:
        return read_template_file(config.templates_folder(), name)[0]
    except TemplateNotFound:
        raise NotFound("template file", name) from None
    except TemplateFileRefused as exc:
        raise TemplateError(name, f"refused: {exc}") from None


def medium_of(name: str) -> str:
    """``sms`` for ``sms.txt``, else ``email``: the message a file's preview shows."""
    return "sms" if name.rsplit("/", 1)[-1] in FILES["sms"] else "email"


@dataclass
class DraftCheck:
    """Lint's findings for a draft and its preview (None when it does not render:
    ``error`` says why)."""

    issues: list[LintIssue]
    preview: Preview | None
    error: str | None


def check_draft(
    config: Config,
    name: str,
    source: str,
    *,
    now: datetime,
    channel: str | None = None,
    locale: str | None = None,
    user: str | None = None,
    engine: Callable[[], Engine] | None = None,
    contexts: UserContexts | None = None,
) -> DraftCheck:
    """Lint and preview ``source`` as if it were saved as ``name``; writes nothing.

    The findings are those ``campaign templates lint`` prints after a save.
    """
    from campaign.templating.drafts import draft_folder
    from campaign.templating.lint import lint_templates

    _check_name(config, name)
    parts = name.split("/")
    with draft_folder(config.templates_folder(), name, source) as folder:
        # One environment for lint and preview: the preview reuses lint's compiled files.
        env = environment(config, folder)
        issues = lint_templates(folder, env=env, **lint_options(config))
        if len(parts) != 3:
            return DraftCheck(issues, None, None)
        try:
            preview = render_preview(
                config, parts[0], channel or medium_of(name), now=now,
                locale=locale or parts[1], user=user, engine=engine, env=env,
                contexts=contexts,
            )
        except CampaignError as exc:
            return DraftCheck(issues, None, str(exc))
    return DraftCheck(issues, preview, None)


class TemplateRefused(InputError):
    """A save or revert refused because the text does not pass lint (its errors kept)."""

    def __init__(self, name: str, issues: list[LintIssue]) -> None:
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        super().__init__(name, f"not saved: {len(errors)} lint error(s), first: {errors[0]}")


def sha256(text: str) -> str:
    """The hex SHA-256 of ``text`` (UTF-8): what an editor opened, to detect changes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_template(
    engine: Engine,
    config: Config,
    name: str,
    source: str,
    *,
    author: str,
    now: datetime,
    opened_sha: str | None = None,
    note: str = "saved",
) -> int:
    """Lint ``source`` as ``name``, refuse on an error, else write it atomically and keep
    it as the next version (the text on disk before the first save is kept first).
    Returns the new version's number; recorded as ``template.saved`` by ``author``.

    ``opened_sha`` is :func:`sha256` of the text the editor opened: when the file has
    changed on disk since, nothing is written.

    Raises:
        TemplateRefused: lint found an error (nothing written).
        InputError: a bad name, the shipped folder, or the file changed since opened.
    """
    from jinja2 import TemplateNotFound

    from campaign.templating.drafts import lint_draft
    from campaign.templating.environment import TemplateFileRefused
    from campaign.templating.loader import write_template_file

    if not editable(config):
        raise InputError(
            name, "the shipped templates are read-only: copy them with `campaign templates "
            "init DIR` and set [templates] dir",
        )
    current = read_template(config, name)
    if opened_sha is not None and opened_sha != sha256(current):
        raise InputError(name, "changed on disk since you opened it: reload, then edit again")
    folder = config.templates_folder()
    issues = lint_draft(folder, name, source, display_root=display_root_for(folder),
                        **lint_options(config))
    if any(i.severity == "error" for i in issues):
        raise TemplateRefused(name, issues)
    with engine.begin() as connection:
        if not store.versions_of(connection, name):
            store.add_version(connection, name, current, author, ON_DISK_NOTE, now=now)
        number = store.add_version(connection, name, source, author, note, now=now)
        store.record(
            connection, author, "template.saved", name, now=now,
            detail={"version": number, "note": note, "sha256": sha256(source)},
        )
        # Written last, inside the transaction: a failed write stores no version.
        try:
            write_template_file(folder, name, source)
        except (TemplateNotFound, TemplateFileRefused) as exc:
            raise InputError(name, f"not saved: {exc}") from None
    return number


def template_history(engine: Engine, config: Config, name: str) -> list[store.Version]:
    """Every stored version of ``name``, newest first; read-only."""
    _check_name(config, name)
    with engine.connect() as connection:
        return store.versions_of(connection, name)


def template_version(engine: Engine, config: Config, name: str, number: int) -> store.Version:
    """Version ``number`` of ``name``.

    Raises:
        NotFound: no such version.
    """
    _check_name(config, name)
    with engine.connect() as connection:
        found = store.get_version(connection, name, number)
    if found is None:
        raise NotFound("template version", f"{name} v{number}")
    return found


def revert_template(
    engine: Engine, config: Config, name: str, number: int, *, author: str, now: datetime
) -> int:
    """Save version ``number`` of ``name`` again (linted like any save) as a new version."""
    old = template_version(engine, config, name, number)
    return save_template(
        engine, config, name, old.content, author=author, now=now, note=f"revert to v{number}"
    )


def diff_lines(old: str, new: str, old_label: str, new_label: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs; kind is ``add``, ``del``, ``hunk`` or ``ctx``."""
    out = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, lineterm=""
    ):
        if line.startswith(("+++", "---")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out
