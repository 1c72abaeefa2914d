"""Templates: lint them, preview a message, and (from the console) edit, save and revert.

``campaign templates lint|render`` and the console's template pages call these, so a
finding, a preview and its checks are the same wherever a marketer looks. Saving lints
first and refuses on an error; every saved text is kept as a numbered version.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError, InputError, NotFound, TemplateError
from campaign.config import SHIPPED_TEMPLATES_DIR, CampaignConfig, Config, OfferConfig
from campaign.db import console as store
from campaign.templating.environment import (
    CampaignEnvironment,
    available_locales,
    display_root_for,
    list_template_sets,
    make_environment,
    template_set_exists,
)
from campaign.templating.issues import LintIssue
from campaign.templating.render import FILES, Medium, Rendered, display_name, pick_locale
from campaign.templating.sms import SmsInfo

# Written when a file is saved for the first time: what was on disk before.
ON_DISK_NOTE = "on disk before the first save"


def offer_usage(config: Config) -> dict[str, frozenset[bool]]:
    """Template set → the ``offer`` flags of the campaign variants that use it."""
    usage: dict[str, set[bool]] = {}
    for campaign in config.campaigns:
        for variant in campaign.variants:
            usage.setdefault(variant.template, set()).add(variant.offer)
    return {name: frozenset(flags) for name, flags in usage.items()}


def _lint_options(config: Config) -> dict[str, Any]:
    limits = config.templates
    return {
        "max_sms_segments": limits.max_sms_segments,
        "max_subject_chars": limits.max_subject_chars,
        "offer_usage": offer_usage(config),
        "render_timeout_seconds": limits.render_timeout_seconds,
        "max_output_bytes": limits.max_output_bytes,
        "stop_words": config.responses.stop_words,
    }


def lint_all(config: Config) -> list[LintIssue]:
    """``campaign templates lint``: every finding in the configured folder, sorted."""
    from campaign.templating.lint import lint_templates

    return lint_templates(config.templates_folder(), **_lint_options(config))


def environment(config: Config, folder: Path | None = None) -> CampaignEnvironment:
    """The sandbox over ``folder`` (default: the configured one) with the config's limits;
    paths are shown as those of the configured folder."""
    real = config.templates_folder()
    return make_environment(
        folder or real,
        display_root=display_root_for(real),
        render_timeout_seconds=config.templates.render_timeout_seconds,
        max_output_bytes=config.templates.max_output_bytes,
    )


def campaign_for(config: Config, name: str) -> tuple[CampaignConfig | None, str, bool]:
    """The first campaign variant using set ``name``: (campaign, variant, offer)."""
    for campaign in config.campaigns:
        for variant in campaign.variants:
            if variant.template == name:
                return campaign, variant.name, variant.offer
    return None, "preview", name != "care"


def user_context(
    engine: Engine, config: Config, external_id: str, name: str, channel: str, *, now: datetime,
    notes: list[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The template context of a real customer (their name, language, recommendations)
    and a preview coupon ``CB-PREVIEW`` that is never stored; (context, locale).

    A recommender failure is a note (``notes``), not an error: the preview has no
    products then. Read-only.

    Raises:
        NotFound: no user with that shop id.
    """
    from sqlalchemy import select

    from campaign.coupons.policy import choose_offer
    from campaign.db.models import User
    from campaign.templating.context import build_context

    campaign, variant, with_offer = campaign_for(config, name)
    with engine.connect() as connection:
        user = connection.execute(
            select(User.id, User.external_id, User.name, User.locale, User.timezone).where(
                User.external_id == external_id
            )
        ).first()
        if user is None:
            raise NotFound("user", external_id)
        products: list[dict[str, Any]] = []
        try:
            from campaign.recommend.service import recommend_for_users

            picks = recommend_for_users(connection, config.recommender, [user.id], now, 5)
            products = [
                {
                    "id": row["product_external_id"],
                    "name": row["name"] or "",
                    "category": row["category"] or "",
                    "brand": "",
                    "price_cents": int(row["price_cents"] or 0),
                    "url": row["url"] or "",
                    "reason": row["reason"] or "",
                }
                for row in picks.sort_values("rank").to_dict("records")
            ]
        except (ImportError, CampaignError) as exc:
            if notes is not None:
                notes.append(f"no recommendations ({exc})")
    coupon = None
    if with_offer:
        offer = choose_offer(
            "high", False, campaign.offer if campaign else OfferConfig.model_validate({}),
            config.shop.currency,
        )
        coupon = {
            "code": "CB-PREVIEW",
            "percent_off": offer.percent_off,
            "min_order_cents": offer.min_order_cents,
            "expires_at": offer.expires_at(now),
            "valid_days": offer.valid_days,
        }
    locale = user.locale or config.shop.default_locale
    context = build_context(
        user={"id": user.external_id, "name": user.name, "locale": locale,
              "timezone": user.timezone},
        products=products,
        coupon=coupon,
        campaign={"name": campaign.name if campaign else name, "variant": variant},
        shop={
            "name": config.shop.name,
            "url": config.shop.base_url,
            "postal_address": config.shop.postal_address,
            "currency": config.shop.currency,
            "timezone": config.shop.timezone,
        },
        unsubscribe_url=f"{config.shop.base_url.rstrip('/')}/unsubscribe/preview-{channel}",
        locale=locale,
    )
    return context, locale


class UserContexts:
    """Real customers' preview contexts, kept ``ttl_seconds`` (by user, set and channel)
    so that a marketer's edits re-render without recomputing the customer's
    recommendations at every keystroke. Not shared between processes."""

    def __init__(self, ttl_seconds: float = 300, size: int = 64) -> None:
        self.ttl_seconds = ttl_seconds
        self.size = size
        self._kept: dict[tuple[str, str, str], tuple[datetime, dict[str, Any], str, list[str]]] = {}

    def get(
        self, engine: Engine, config: Config, user: str, name: str, channel: str, *,
        now: datetime, notes: list[str],
    ) -> tuple[dict[str, Any], str]:
        """:func:`user_context`, from the cache while it is younger than the TTL."""
        key = (user, name, channel)
        kept = self._kept.get(key)
        if kept is not None and (now - kept[0]).total_seconds() < self.ttl_seconds:
            notes.extend(kept[3])
            return kept[1], kept[2]
        found: list[str] = []
        context, locale = user_context(engine, config, user, name, channel, now=now, notes=found)
        if len(self._kept) >= self.size:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (now, context, locale, found)
        notes.extend(found)
        return context, locale


@dataclass
class Preview:
    """One rendered message and lint's checks of it (``campaign templates render``).

    ``locale`` is the folder used; ``sms`` is set for SMS; ``notes`` are remarks such
    as a fallback to the default locale.
    """

    rendered: Rendered
    locale: str
    issues: list[LintIssue]
    sms: SmsInfo | None = None
    notes: list[str] = field(default_factory=list)


def render_preview(
    config: Config,
    name: str,
    channel: str,
    *,
    now: datetime,
    locale: str | None = None,
    user: str | None = None,
    engine: Callable[[], Engine] | None = None,
    env: CampaignEnvironment | None = None,
    contexts: UserContexts | None = None,
) -> Preview:
    """Render set ``name`` for ``channel`` (email or sms) with a sample or a real user
    (``user``, the shop's id; ``engine`` opens the database for it), then lint's checks
    of the message. ``env`` renders from another environment (over a draft's copy of
    the configured folder, see :func:`environment`); ``contexts`` keeps real users'
    contexts between calls. Sends and stores nothing.

    Raises:
        InputError: a bad channel, or a locale the set has no folder for.
        TemplateError: no such set, or the message does not render.
        NotFound: no such user.
    """
    from campaign.common.optout import StopWords
    from campaign.templating.context import sample_context
    from campaign.templating.lint import check_rendered_email, check_rendered_sms, sms_segments
    from campaign.templating.render import render_message

    if channel not in ("email", "sms"):
        raise InputError("--channel", f"{channel!r} is not email or sms")
    env = env or environment(config)
    if not template_set_exists(env.templates_dir, name):
        known = ", ".join(list_template_sets(env.templates_dir)) or "none"
        raise TemplateError(display_name(env, name), f"no such template set (known: {known})")
    available = env.locales_of(name)
    if locale is not None and pick_locale(available, locale, None) is None:
        raise InputError(
            "--locale",
            f"template set {name!r} has no {locale!r} folder (available:"
            f" {', '.join(available) or 'none'})",
        )
    notes: list[str] = []
    default_locale = config.shop.default_locale
    if user is not None:
        if engine is None:
            raise InputError("--user", "a real user's preview needs the database")
        if contexts is not None:
            context, user_locale = contexts.get(
                engine(), config, user, name, channel, now=now, notes=notes
            )
        else:
            context, user_locale = user_context(
                engine(), config, user, name, channel, now=now, notes=notes
            )
        wanted = locale or user_locale
    else:
        wanted = locale or default_locale
        _, _, with_offer = campaign_for(config, name)
        context = sample_context(wanted, with_coupon=with_offer)
    used = pick_locale(available, wanted, default_locale)
    if locale is None and used is not None and pick_locale(available, wanted, None) is None:
        notes.append(
            f"{name} has no {wanted!r} folder; using {used!r}"
            f" (the shop's default_locale {default_locale!r})"
        )
    medium: Medium = "sms" if channel == "sms" else "email"
    rendered = render_message(env, name, medium, wanted, context, default_locale=default_locale)
    assert used is not None  # render_message found the folder
    if used != context.get("locale"):
        context = {**context, "locale": used}
    limits = config.templates
    if medium == "sms":
        words = config.responses.stop_words
        issues = check_rendered_sms(
            env, name, used, rendered, context, max_segments=limits.max_sms_segments,
            stop_words=StopWords(words) if words is not None else None,
        )
        return Preview(rendered, used, issues, sms_segments(rendered.text), notes)
    issues = check_rendered_email(
        env, name, used, rendered, context, max_subject_chars=limits.max_subject_chars
    )
    return Preview(rendered, used, issues, None, notes)


# -- the console's editor -------------------------------------------------------------


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
        issues = lint_templates(folder, env=env, **_lint_options(config))
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
                        **_lint_options(config))
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
