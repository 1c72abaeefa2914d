"""What every command shares: the global options, error translation, rich output.

The global options (``--config``, ``--debug``) are accepted before the subcommand
(``campaign --config c.toml send``) and after it (``campaign send --config c.toml``):
:class:`CampaignGroup` adds them to every command and sub-group.

Errors are translated here, in one place: a :class:`CampaignError` is one line
``error: ...`` and exit 1; a database driver error (locked, disk full, unreachable...)
is one line saying which command failed, what happened and what to do, without the
SQL, its parameters or anything of a customer's; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from campaign.config import Config

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
    command: str = ""
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def config(self, *, secrets: Iterable[str] = ()) -> Config:
        """The loaded configuration (flag > env > file > defaults), loaded once.

        ``secrets`` names what the command does with secrets (``send``, ``serve``,
        ``links``, ``shop``: see :meth:`Config.require_secrets`): every secret its
        work needs must be set, and only those.
        """
        if self._config is None:
            from campaign.config import load_config

            self._config = load_config(self.config_path, secrets=secrets)
        if secrets:
            self._config.require_secrets(*secrets)
        return self._config

    def database_url(self) -> str:
        """The configured database URL, refused unless it is SQLite or PostgreSQL."""
        from campaign.db.engine import check_supported

        url = self.config().database_url()
        check_supported(url)
        return url

    def default_as_of(self) -> datetime:
        """``[clock] as_of`` when the config pins it, else the real time (UTC)."""
        return self.config().clock.as_of or datetime.now(UTC)

    def engine(self, *, migrated: bool = True) -> Engine:
        """An engine on the configured database; by default it must be at head."""
        from campaign.db.engine import make_engine

        if self._engine is None:
            config = self.config()
            # Only `db upgrade` (which makes its own engine) creates a SQLite file.
            self._engine = make_engine(
                self.database_url(), echo=config.database.echo,
                busy_timeout_seconds=config.database.busy_timeout_seconds, create=False,
            )
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


# Every --as-of defaults alike (docs/churn.md, README "Commands").
AS_OF_DEFAULT = "default: [clock] as_of when the config pins it, else now"
AS_OF_HELP = f"As-of time T (ISO date or datetime, naive means UTC; {AS_OF_DEFAULT})."
# Data older than T by more than this gets a note: T is probably not what was meant.
STALE_DAYS = 7


def note_if_stale(engine: Engine, when: datetime) -> None:
    """Say on stderr when the newest event is well before T (stale data, or a T from
    the wrong year): churn labels and recency would count the gap as inactivity."""
    from campaign.common.errors import NotFound
    from campaign.profile.queries import newest_event_at

    with engine.connect() as connection:
        try:
            newest = newest_event_at(connection)
        except NotFound:
            return
    gap = (when - newest).total_seconds() / 86400
    if gap > STALE_DAYS:
        err_console.print(
            f"note: the newest event ({newest:%Y-%m-%d %H:%M} UTC) is {gap:.0f} days before "
            f"T ({when:%Y-%m-%d %H:%M} UTC): import recent events or pass --as-of",
            markup=False, soft_wrap=True,
        )


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


def _set_config(ctx: Any, _param: Any, value: Path | None) -> None:
    # Click calls this for every (sub)command being parsed, given or not: the deepest
    # one names the command in error lines.
    app_state = state(ctx)
    app_state.command = _command_path(ctx)
    if value is not None:
        app_state.config_path = value


def _set_debug(ctx: Any, _param: Any, value: bool) -> None:
    if value:
        state(ctx).debug = True


def _global_copies(root_params: Iterable[Any]) -> list[Any]:
    """Copies of the root's ``--config`` and ``--debug`` for a subcommand: the same option
    class (typer's own), with a callback that sets the shared state instead of an
    argument, and no environment variable (the root reads ``CAMPAIGN_CONFIG``)."""
    copies = []
    for param in root_params:
        if param.name not in _GLOBAL_CALLBACKS:
            continue
        clone = copy.copy(param)
        clone.callback = _GLOBAL_CALLBACKS[param.name]
        clone.expose_value = False
        clone.envvar = None
        clone.is_eager = False
        if param.name == "config":
            clone.help = "Config file (also accepted before the command)."
        copies.append(clone)
    return copies


_GLOBAL_CALLBACKS: dict[str, Callable[[Any, Any, Any], None]] = {
    "config": _set_config,
    "debug": _set_debug,
}


def _add_global_options(command: Any, copies: Callable[[], list[Any]]) -> None:
    names = {name for param in command.params for name in getattr(param, "opts", ())}
    if "--config" not in names:
        command.params.extend(copies())
    for sub in getattr(command, "commands", {}).values():
        _add_global_options(sub, copies)


def _command_path(ctx: Any) -> str:
    """``import users`` for ``campaign import users ...`` (the innermost command)."""
    names: list[str] = []
    current = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    return " ".join(reversed(names))


def database_error_line(exc: BaseException, command: str, obj: AppState | None) -> str | None:
    """The one line for a database driver error raised by ``command``, else None.

    Built from the driver's error code and the first line of its message only (never
    the statement or its parameters), with addresses and phone numbers masked.
    """
    from campaign.daemon.logging import redact
    from campaign.db.errors import explain

    problem = explain(exc)
    if problem is None:
        return None
    where = ""
    if obj is not None and obj._config is not None:
        from campaign.db.engine import mask_url

        where = f" (database {mask_url(obj._config.database_url())})"
    name = f"campaign {command}" if command else "campaign"
    return redact(f"{name} failed{where}: {problem} (--debug shows details)")


class CampaignGroup(TyperGroup):
    """Turns expected errors into one line on stderr and exit code 1.

    Adds the global options to every subcommand. Unexpected exceptions keep their
    traceback; ``--debug`` shows it for expected ones too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            _add_global_options(command, lambda: _global_copies(self.params))

    def invoke(self, ctx: Any) -> Any:
        from campaign.common.errors import CampaignError

        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            obj = ctx.find_root().obj
            if isinstance(obj, AppState) and obj.debug:
                raise
            err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            obj = ctx.find_root().obj
            app_state = obj if isinstance(obj, AppState) else None
            if app_state is not None and app_state.debug:
                raise
            command = app_state.command if app_state is not None else "campaign"
            line = database_error_line(exc, command, app_state)
            if line is None:
                raise
            err_console.print(f"error: {line}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            obj = ctx.find_root().obj
            if isinstance(obj, AppState) and obj._engine is not None:
                obj._engine.dispose()
                obj._engine = None


class _Advance:
    """What :func:`progress_bar` yields: ``advance(n)``, plus ``set_total(n)`` for work
    that learns its total part-way (:func:`campaign.common.progress.set_total`)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)`` for the core to call.

    With a total the bar counts ``done/total``; until one is known (``None``, or the
    core has not called ``set_total`` yet) it shows a pulsing bar and the count done,
    never ``0/?``. The bar hides itself when stderr is not a terminal, so scripts and
    tests see no control characters.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task: Any) -> Text:
            done = int(task.completed)
            if task.total is None:
                return Text(f"{done:,}" if done else "", style="progress.download")
            return Text(f"{done:,}/{int(task.total):,}", style="progress.download")

    class Remaining(TimeRemainingColumn):
        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        Count(),
        TimeElapsedColumn(),
        Remaining(),
        console=err_console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield _Advance(progress, task)
