"""What every command shares: the --config option, error translation, rich output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from campaign.config import Config, load_config
from campaign.errors import CampaignError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Every command module imports this one, and `import campaign.cli` imports every
# command module: keep this module and theirs light (no sqlalchemy, alembic, pandas,
# scikit-learn... at import time) so `campaign --help` and each command start fast.
# tests/test_cli_startup.py guards it.

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class AppState:
    """Options of the top-level callback, shared with every command through ``ctx.obj``."""

    config_path: Path | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def config(self) -> Config:
        """The loaded configuration (flag > env > file > defaults), loaded once."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def default_as_of(self) -> datetime:
        """``[clock] as_of`` when the config pins it, else the real time (UTC)."""
        return self.config().clock.as_of or datetime.now(UTC)

    def engine(self, *, migrated: bool = True) -> Engine:
        """An engine on the configured database; by default it must be at head."""
        from campaign.db.engine import make_engine

        if self._engine is None:
            config = self.config()
            self._engine = make_engine(config.database_url(), echo=config.database.echo)
        if migrated:
            from campaign.db.migrate import require_current

            require_current(self._engine)
        return self._engine


def state(ctx: typer.Context) -> AppState:
    """The :class:`AppState` of the running command."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def parse_when(value: str | None, option: str = "--as-of") -> datetime | None:
    """``2026-11-01`` or an ISO 8601 datetime (naive means UTC) → aware UTC datetime.

    None stays None. Raises typer.BadParameter (exit 2, usage) naming the option.
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 datetime", param_hint=option
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class CampaignGroup(TyperGroup):
    """Turns expected errors into one line on stderr and exit code 1.

    Unexpected exceptions keep their traceback; ``--debug`` shows it for expected
    ones too.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            obj = ctx.find_root().obj
            if isinstance(obj, AppState) and obj.debug:
                raise
            err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            obj = ctx.find_root().obj
            if isinstance(obj, AppState) and obj._engine is not None:
                obj._engine.dispose()
                obj._engine = None


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)`` for the core to call.

    The bar hides itself when stderr is not a terminal, so scripts and tests see no
    control characters.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield advance
