"""The real ``campaign demo`` once per test session, and readers of what it prints.

The demo is built with ``DEMO_USERS`` users and seed ``DEMO_SEED``: the smallest shop
on which the winback uplift's 95% interval reliably excludes zero (at 300 users it
does not), so the tests can assert the demo's claim instead of only printing it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEMO_USERS = 2000
DEMO_SEED = 2


@dataclass(frozen=True)
class DemoShop:
    """A demo folder made by the real command, and what that command printed."""

    folder: Path
    stdout: str


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``CAMPAIGN_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(extra)
    return env


def campaign_cli(*args: str, cwd: Path, timeout: float = 240,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m campaign ARGS`` in ``cwd``, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "campaign", *args],
        cwd=cwd, env=clean_env() if env is None else env, capture_output=True, text=True,
        timeout=timeout,
    )


def build_demo(folder: Path) -> DemoShop:
    """Run ``campaign demo`` into ``folder`` at the tests' size and seed."""
    done = campaign_cli("demo", "--users", str(DEMO_USERS), "--seed", str(DEMO_SEED),
                        "--dir", str(folder), cwd=folder.parent, timeout=600)
    assert done.returncode == 0, done.stderr
    return DemoShop(folder, done.stdout)


def suggested_commands(stdout: str) -> list[list[str]]:
    """The ``campaign …`` commands of the demo's closing "Next:" hint, as argv lists."""
    hint = " ".join(stdout[stdout.rindex("Next:"):].split())
    listed = hint.split("e.g. ", 1)[1]
    return [command.strip().split() for command in listed.split(", ")]


# A word of a printed command: an option, a subcommand or value, a PLACEHOLDER, a date.
_WORD = re.compile(r"(--?[a-z][\w-]*|[a-z][\w-]*(\.[a-z]+)?|[A-Z]+|\d[\d:TZ.-]*)")


def printed_commands(stdout: str) -> list[str]:
    """Every ``campaign …`` command the demo prints anywhere (hints, step titles).

    A command runs from ``campaign`` to the first word that is not a command word or
    that ends in punctuation (``,`` ``:`` ``)`` ``.``), as in "e.g. campaign preview
    winback, campaign report".
    """
    words = " ".join(stdout.split()).split(" ")
    found: list[str] = []
    for index, word in enumerate(words):
        if word.lstrip("(") != "campaign":
            continue
        command = ["campaign"]
        for follower in words[index + 1:]:
            bare = follower.rstrip(",:).;")
            if not _WORD.fullmatch(bare):
                break
            command.append(bare)
            if bare != follower:
                break
        if len(command) > 1:
            found.append(" ".join(command))
    return found


def planted_effects(stdout: str) -> list[tuple[str, float, float, float, float]]:
    """(campaign, measured, interval low, high, planted) from the report step's lines."""
    text = " ".join(stdout.split())
    # One report line each: "X converted a% of n treated vs b% of m held out: ..." (the
    # comparison step's lines have no interval, so a match never spans two lines).
    found = re.findall(
        r"(\w+) converted [\d.]+% of [\d,]+ treated vs [\d.]+% of [\d,]+ held out: "
        r"([+-]?[\d.]+) pts \[95% CI ([+-]?[\d.]+), "
        r"([+-]?[\d.]+)\][^;]*; planted ([+-]?[\d.]+) pts", text)
    return [(name, float(measured), float(low), float(high), float(planted))
            for name, measured, low, high, planted in found]


def targeting_comparison(stdout: str) -> dict[str, tuple[int, float]]:
    """{"uplift-ranked"/"risk-ranked": (customers, measured uplift in pts)} from the
    demo's "second run: the uplift-ranked audience gained ..." line."""
    text = " ".join(stdout.split())
    found = re.search(r"the uplift-ranked audience gained ([+-]?[\d.]+) pts vs ([+-]?[\d.]+) "
                      r"pts for the risk-ranked one \(([\d,]+) customers each\)", text)
    if found is None:
        return {}
    size = int(found[3].replace(",", ""))
    return {"uplift-ranked": (size, float(found[1])), "risk-ranked": (size, float(found[2]))}
