"""``campaign models sign``: authenticate stored model artifacts with the signing key."""

from __future__ import annotations

from pathlib import Path

import typer

from campaign.cli.common import console, err_console, state

app = typer.Typer(help="Stored model artifacts and their signatures.", no_args_is_help=True)


@app.command("sign")
def sign_command(
    ctx: typer.Context,
    previous_key_file: list[Path] = typer.Option(
        [],
        "--previous-key-file",
        metavar="FILE",
        help="A key file of a key being retired (repeatable): rows it signed are re-signed.",
    ),
    previous_key_env: list[str] = typer.Option(
        [],
        "--previous-key-env",
        metavar="NAME",
        help="An environment variable holding a key being retired (repeatable).",
    ),
    unsigned: bool = typer.Option(
        True,
        "--unsigned/--no-unsigned",
        help="Also sign rows that have no signature yet (stored before model signing).",
    ),
) -> None:
    """Sign the stored models with the current key (once after the upgrade; after a rotation).

    Rows already signed with the current key stay as they are; rows signed with a
    previous key given here are re-signed; unsigned rows are signed (they predate
    signing: run this right after `campaign db upgrade`, before anyone else can write
    the database). A row whose signature verifies under no given key was changed in the
    database: it is refused, stays unloadable, and the command exits 1.
    """
    import os

    from campaign.churn.artifacts import key_id, model_key, read_key_file
    from campaign.churn.registry import sign_models
    from campaign.common.errors import InputError

    app_state = state(ctx)
    config = app_state.config()
    key = model_key(config.model)
    previous = [read_key_file(path) for path in previous_key_file]
    for name in previous_key_env:
        value = os.environ.get(name)
        if not value:
            raise InputError("--previous-key-env", f"environment variable {name} is not set")
        previous.append(value.encode())
    with app_state.engine().begin() as connection:
        report = sign_models(connection, key, previous_keys=tuple(previous), unsigned=unsigned)
    console.print(
        f"model versions signed with key {key_id(key)}: {len(report.signed)} signed now, "
        f"{len(report.unchanged)} already signed",
        markup=False,
    )
    if report.refused:
        ids = ", ".join(str(i) for i in report.refused)
        err_console.print(
            f"error: model version(s) {ids}: the signature verifies under no key given "
            "(changed in the database, or signed by a key not passed with --previous-key-*); "
            "left unsigned for this key and never loaded: retrain with `campaign train`",
            markup=False, soft_wrap=True,
        )
        raise typer.Exit(1)
