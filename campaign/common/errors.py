"""The exceptions ``campaign`` raises on purpose.

Every expected failure is a :class:`CampaignError`; anything else is a bug and keeps
its traceback. The command line prints ``error: <message>`` for these and exits 1.

::

    CampaignError
    ├── ConfigError            path, key, reason
    │   └── ConfigErrors           every invalid value of one file at once
    ├── InputError             source, line, column, reason   (CSV/Parquet rows, CLI values)
    ├── TemplateError          template, line, reason          (lint + render)
    │   └── TemplateBudgetError      over the render budget: the set is broken for the run
    ├── NotFound               kind, key                       (unknown user, campaign, model)
    ├── DatabaseError          url (masked), reason            (unreachable, not migrated)
    ├── ModelError             incompatible or missing artifact, too little data
    ├── EngineError            the Spark engine is missing or one of its jobs failed
    ├── DeliveryError          channel, message id, status
    │   ├── TransientDeliveryError   → retried with backoff
    │   └── PermanentDeliveryError   → dead, never retried
    └── SignatureError         bad or missing webhook signature

Messages say *what* and *where*; the fields they are built from stay available as
attributes so callers never parse a message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'winback'?)"`` for the closest of ``choices``, else ``""``."""
    options = [c for c in choices if c != word]
    by_lower = {c.lower(): c for c in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


class CampaignError(Exception):
    """Base class of every error ``campaign`` raises on purpose."""


class ConfigError(CampaignError):
    """A configuration file or value is invalid.

    Raised by :func:`campaign.config.load_config` with the dotted key path, e.g.
    ``config.toml: campaigns[1].holdout_share: must be between 0 and 0.5``.
    """

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {reason}")


class ConfigErrors(ConfigError):
    """Several invalid values in one configuration, all listed (one line each).

    ``key`` and ``reason`` are those of the first; ``errors`` holds every one.
    """

    def __init__(self, path: str, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__(path, errors[0].key, errors[0].reason)
        lines = "\n".join(str(e) for e in errors)
        self.args = (f"{path}: {len(errors)} invalid settings\n{lines}",)


class InputError(CampaignError):
    """A row, file or command-line value could not be accepted.

    ``line`` is 1-based and counts the header as line 1; ``column`` is the column
    name (CSV) or option name (CLI). For a Parquet file ``line`` is the row (from 1)
    and ``row_group`` the row group it is in (from 1): ``events.parquet: row 17 (row
    group 2): ts: ...``.
    """

    def __init__(
        self,
        source: str,
        reason: str,
        line: int | None = None,
        column: str | None = None,
        *,
        row_group: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
        self.row_group = row_group
        where = source
        if row_group is not None:
            where += f": row {line} (row group {row_group})"
        elif line is not None:
            where += f":{line}"
        if column:
            where += f": {column}"
        super().__init__(f"{where}: {reason}")


class InputErrors(InputError):
    """Several :class:`InputError` found in one file; the first few are listed."""

    def __init__(self, source: str, errors: list[InputError], total: int) -> None:
        self.errors = errors
        self.total = total
        shown = "\n".join(str(e) for e in errors)
        more = f"\n... and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__(source, f"{total} invalid row(s), nothing imported\n{shown}{more}")


class TemplateError(CampaignError):
    """A template does not parse, lint or render; names the file and line."""

    def __init__(self, template: str, reason: str, line: int | None = None) -> None:
        self.template = template
        self.line = line
        self.reason = reason
        where = f"{template}:{line}" if line is not None else template
        super().__init__(f"{where}: {reason}")


class TemplateBudgetError(TemplateError):
    """A render went over its budget (time, loops, output or an operation's size).

    Raised by :mod:`campaign.templating.render`; a run treats the set as broken after
    the first one and renders nothing more with it.
    """


class NotFound(CampaignError):
    """Something named by the caller does not exist (user, campaign, active model...)."""

    def __init__(self, kind: str, key: str, choices: Iterable[str] | None = None) -> None:
        self.kind = kind
        self.key = key
        message = f"{kind} not found: {key}"
        if choices is not None:
            known = sorted(choices)
            hint = did_you_mean(key, known)
            if hint:
                message += hint
            else:
                message += f" (known: {', '.join(known) or 'none configured'})"
        super().__init__(message)


class DatabaseError(CampaignError):
    """The database cannot be reached or is not at the expected schema revision."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"database {url}: {reason}")


class ModelError(CampaignError):
    """A model cannot be trained (too little data) or loaded (missing, incompatible)."""


class EngineError(CampaignError):
    """The batch engine cannot run: its extra is not installed, Spark cannot start, or a
    Spark job failed (nothing it computed has been stored)."""


class DeliveryError(CampaignError):
    """A provider did not accept a message."""

    def __init__(
        self, channel: str, reason: str, message_id: int | None = None, status: int | None = None
    ) -> None:
        self.channel = channel
        self.message_id = message_id
        self.status = status
        self.reason = reason
        where = channel if message_id is None else f"{channel} message {message_id}"
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{where}: {reason}{code}")


class TransientDeliveryError(DeliveryError):
    """A failure worth retrying: timeout, connection error, 5xx or 429.

    ``retry_after`` (seconds) is the provider's own hint, when it gave one.
    ``maybe_delivered``: the request went out and no answer came back (a read timeout,
    a connection lost mid-answer), so the provider may have accepted it; False when
    it provably did not (it answered, or the connection never opened).
    """

    def __init__(
        self,
        channel: str,
        reason: str,
        message_id: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered
        super().__init__(channel, reason, message_id, status)


class PermanentDeliveryError(DeliveryError):
    """A failure retrying cannot fix (4xx other than 429): the message goes dead."""


class SignatureError(CampaignError):
    """A webhook request carries a bad, stale or missing signature."""
