"""``campaign templates lint|render``: for marketers editing ``templates/``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from campaign.cli.common import console, err_console, state

if TYPE_CHECKING:
    from campaign.config import Config

app = typer.Typer(help="Check and preview the message templates.", no_args_is_help=True)


def templates_dir(config: Config) -> Path:
    """The templates folder (:meth:`Config.templates_folder`)."""
    return config.templates_folder()


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
    from campaign.app.templates import lint_all
    from campaign.templating.environment import list_template_sets

    config = state(ctx).config()
    folder = templates_dir(config)
    issues = lint_all(config)
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
    from campaign.app.templates import render_preview

    app_state = state(ctx)
    config = app_state.config()
    preview = render_preview(
        config, name, channel, now=datetime.now(UTC), locale=locale, user=user,
        engine=app_state.engine,
    )
    for note in preview.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    rendered = preview.rendered
    if rendered.subject is not None:
        console.print(
            f"Subject: {rendered.subject}\n", markup=False, highlight=False, soft_wrap=True
        )
    console.print(rendered.text, markup=False, highlight=False, soft_wrap=True)
    if preview.sms is not None:
        info = preview.sms
        err_console.print(
            f"({info.units} {info.encoding} characters, {info.segments} segment(s))",
            markup=False,
            soft_wrap=True,
        )
    if html is not None and rendered.html is not None:
        html.write_text(rendered.html, encoding="utf-8")
        err_console.print(f"HTML written to {html}", markup=False, soft_wrap=True)
    for issue in preview.issues:
        err_console.print(str(issue), markup=False, soft_wrap=True, highlight=False)
    errors = sum(1 for issue in preview.issues if issue.severity == "error")
    if errors:
        err_console.print(
            f"error: {errors} lint error(s) in this message (see above)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
