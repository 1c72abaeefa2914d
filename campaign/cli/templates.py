"""``campaign templates lint|render``: for marketers editing ``templates/``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from campaign.cli.common import console, err_console, state

if TYPE_CHECKING:
    from campaign.config import CampaignConfig, Config
    from campaign.templating.render import Medium

app = typer.Typer(help="Check and preview the message templates.", no_args_is_help=True)


def templates_dir(config: Config) -> Path:
    """The templates folder (:meth:`Config.templates_folder`)."""
    return config.templates_folder()


def offer_usage(config: Config) -> dict[str, frozenset[bool]]:
    """Template set → the ``offer`` flags of the campaign variants that use it."""
    usage: dict[str, set[bool]] = {}
    for campaign in config.campaigns:
        for variant in campaign.variants:
            usage.setdefault(variant.template, set()).add(variant.offer)
    return {name: frozenset(flags) for name, flags in usage.items()}


@app.command("init")
def init_command(
    ctx: typer.Context,
    folder: Path | None = typer.Argument(
        None, help="Where to put the copy (created if missing); default: the configured "
        "[templates] dir, else templates/ beside the config.",
    ),
) -> None:
    """Copy the default template sets into FOLDER, for marketers to edit.

    Never overwrites: if any file would be replaced, nothing is copied. Lint, preview
    and run read the copy once [templates] dir points at it (the default folder needs
    no setting).
    """
    from campaign.templating.defaults import copy_default_templates

    config = state(ctx).config()
    destination = folder if folder is not None else config.resolve_path(config.templates.dir)
    copied = copy_default_templates(destination)
    sets = ", ".join(copied.template_sets)
    console.print(
        f"copied {copied.files} file(s) of {len(copied.template_sets)} template set(s) "
        f"({sets}) to {copied.destination}",
        markup=False, soft_wrap=True,
    )
    if config.templates_folder().resolve() == destination.resolve():
        console.print("lint, preview and run read this folder now", markup=False)
    else:
        console.print(
            f'next: set  [templates] dir = "{destination.resolve()}"  in the config, '
            "then check it with: campaign templates lint",
            markup=False, soft_wrap=True,
        )


@app.command("lint")
def lint_command(ctx: typer.Context) -> None:
    """Check every template: syntax, names, SMS length, unsubscribe link, HTML.

    Prints one line per issue and exits 1 when there is any error (warnings alone
    exit 0).
    """
    from campaign.templating.environment import list_template_sets
    from campaign.templating.lint import lint_templates

    config = state(ctx).config()
    folder = templates_dir(config)
    issues = lint_templates(
        folder,
        max_sms_segments=config.templates.max_sms_segments,
        max_subject_chars=config.templates.max_subject_chars,
        offer_usage=offer_usage(config),
        render_timeout_seconds=config.templates.render_timeout_seconds,
        max_output_bytes=config.templates.max_output_bytes,
        stop_words=config.responses.stop_words,
    )
    for issue in issues:
        typer.echo(str(issue))
    n_errors = sum(1 for i in issues if i.severity == "error")
    n_warnings = len(issues) - n_errors
    sets = list_template_sets(folder)
    err_console.print(
        f"{len(sets)} template set(s) in {folder}: {n_errors} error(s), {n_warnings} warning(s)",
        markup=False,
        soft_wrap=True,
    )
    if n_errors:
        raise typer.Exit(1)


def _campaign_for(config: Config, name: str) -> tuple[CampaignConfig | None, str, bool]:
    """The first campaign variant using set ``name``: (campaign, variant, offer)."""
    for campaign in config.campaigns:
        for variant in campaign.variants:
            if variant.template == name:
                return campaign, variant.name, variant.offer
    return None, "preview", name != "care"


def _user_context(
    ctx: typer.Context, config: Config, external_id: str, name: str, channel: str
) -> tuple[dict[str, Any], str]:
    from sqlalchemy import select

    from campaign.common.errors import CampaignError, NotFound
    from campaign.config import OfferConfig
    from campaign.coupons.policy import choose_offer
    from campaign.db.models import User
    from campaign.templating.context import build_context

    campaign, variant, with_offer = _campaign_for(config, name)
    engine = state(ctx).engine()
    now = datetime.now(UTC)
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
            from campaign.churn.artifacts import model_key
            from campaign.recommend.service import recommend_for_users

            picks = recommend_for_users(
                connection, config.recommender, [user.id], now, 5,
                key=lambda: model_key(config.model),
            )
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
            err_console.print(f"note: no recommendations ({exc})", markup=False, soft_wrap=True)
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
        user={
            "id": user.external_id,
            "name": user.name,
            "locale": locale,
            "timezone": user.timezone,
        },
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


@app.command("render")
def render_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template set, e.g. winback."),
    user: str | None = typer.Option(
        None, "--user", help="The shop's user id: render with their real data (else a sample)."
    ),
    locale: str | None = typer.Option(None, "--locale", help="Locale folder, e.g. en or zh-CN."),
    channel: str = typer.Option("email", "--channel", help="email or sms."),
    html: Path | None = typer.Option(None, "--html", help="Also write the HTML body to FILE."),
) -> None:
    """Render one template set with a sample or a real user; sends nothing, stores nothing.

    A real user's preview uses their recommendations and a preview coupon that is
    never reserved. The rendered message then gets lint's checks (SMS segments,
    unsubscribe link, postal address, balanced HTML): it exits 1 when one of them is
    an error, as campaign templates lint would.
    """
    from campaign.common.errors import InputError, TemplateError
    from campaign.templating.context import sample_context
    from campaign.templating.environment import (
        list_template_sets,
        make_environment,
        template_set_exists,
    )
    from campaign.templating.lint import check_rendered_email, check_rendered_sms, sms_segments
    from campaign.templating.render import pick_locale, render_message

    if channel not in ("email", "sms"):
        raise InputError("--channel", f"{channel!r} is not email or sms")
    config = state(ctx).config()
    folder = templates_dir(config)
    if not template_set_exists(folder, name):
        known = ", ".join(list_template_sets(folder)) or "none"
        raise TemplateError(f"{folder}/{name}", f"no such template set (known: {known})")
    env = make_environment(
        folder,
        render_timeout_seconds=config.templates.render_timeout_seconds,
        max_output_bytes=config.templates.max_output_bytes,
    )
    available = env.locales_of(name)
    if locale is not None and pick_locale(available, locale, None) is None:
        raise InputError(
            "--locale",
            f"template set {name!r} has no {locale!r} folder (available:"
            f" {', '.join(available) or 'none'})",
        )
    if user is not None:
        context, user_locale = _user_context(ctx, config, user, name, channel)
        wanted = locale or user_locale
    else:
        wanted = locale or config.shop.default_locale
        _, _, with_offer = _campaign_for(config, name)
        context = sample_context(wanted, with_coupon=with_offer)
    folder_used = pick_locale(available, wanted, config.shop.default_locale)
    if locale is None and folder_used is not None and pick_locale(available, wanted, None) is None:
        err_console.print(
            f"note: {name} has no {wanted!r} folder; using {folder_used!r}"
            f" (the shop's default_locale {config.shop.default_locale!r})",
            markup=False,
            soft_wrap=True,
        )
    medium: Medium = "sms" if channel == "sms" else "email"
    rendered = render_message(
        env, name, medium, wanted, context, default_locale=config.shop.default_locale
    )
    if folder_used is not None and folder_used != context.get("locale"):
        context = {**context, "locale": folder_used}
    if rendered.subject is not None:
        console.print(
            f"Subject: {rendered.subject}\n", markup=False, highlight=False, soft_wrap=True
        )
    console.print(rendered.text, markup=False, highlight=False, soft_wrap=True)
    if channel == "sms":
        info = sms_segments(rendered.text)
        err_console.print(
            f"({info.units} {info.encoding} characters, {info.segments} segment(s))",
            markup=False,
            soft_wrap=True,
        )
    if html is not None and rendered.html is not None:
        html.write_text(rendered.html, encoding="utf-8")
        err_console.print(f"HTML written to {html}", markup=False, soft_wrap=True)
    assert folder_used is not None  # render_message found the folder
    limits = config.templates
    if channel == "sms":
        from campaign.common.optout import StopWords

        words = config.responses.stop_words
        issues = check_rendered_sms(
            env, name, folder_used, rendered, context, max_segments=limits.max_sms_segments,
            stop_words=StopWords(words) if words is not None else None,
        )
    else:
        issues = check_rendered_email(
            env, name, folder_used, rendered, context,
            max_subject_chars=limits.max_subject_chars,
        )
    for issue in issues:
        err_console.print(str(issue), markup=False, soft_wrap=True, highlight=False)
    errors = sum(1 for issue in issues if issue.severity == "error")
    if errors:
        err_console.print(
            f"error: {errors} lint error(s) in this message (see above)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
