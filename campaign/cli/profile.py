"""``campaign segments``: cluster customers into named behaviour segments and store them."""

from __future__ import annotations

import typer
from rich.table import Table

from campaign.cli.common import AS_OF_HELP, console, note_if_stale, parse_when, state


def segments_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    segments: int = typer.Option(
        5, "--segments", "-k", min=2, max=8, help="Number of k-means clusters of buyers."
    ),
) -> None:
    """Segment customers by behaviour as of T and store each user's segment."""
    from campaign.profile.queries import newest_event_at
    from campaign.profile.segments import update_segments

    app_state = state(ctx)
    engine = app_state.engine()
    when = parse_when(as_of) or app_state.default_as_of()
    with engine.connect() as connection:
        newest_event_at(connection)  # an empty shop fails here, in one line
    note_if_stale(engine, when)
    result = update_segments(engine, when, n_segments=segments)
    console.print(f"{len(result.names):,} users segmented as of {when:%Y-%m-%d %H:%M} UTC")
    table = Table(title="segments (centroid z-scores of buyers)", title_justify="left")
    for column in ("segment", "users", "recency", "frequency", "order value", "coupons", "trend"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    counts = result.names.value_counts()
    centroids = result.centroids
    for name, users in counts.items():
        row = centroids[centroids["name"] == name]
        if row.empty:
            table.add_row(str(name), str(users), *["–"] * 5)
            continue
        z = row.iloc[0]
        table.add_row(
            str(name),
            str(users),
            *(f"{z[c]:+.2f}" for c in ("recency", "frequency", "order_value", "coupon_share",
                                       "trend")),
        )
    console.print(table)
