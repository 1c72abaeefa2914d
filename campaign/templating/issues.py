"""What the template lint reports: one :class:`LintIssue` per problem, errors and warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from campaign.common.errors import TemplateError

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class LintIssue:
    """One finding: ``templates/winback/en/email.html:12: ...``."""

    path: str
    line: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {label}{self.message}"


def issue_from(error: TemplateError, severity: Severity = "error", note: str = "") -> LintIssue:
    return LintIssue(error.template, error.line, severity, error.reason + note)
