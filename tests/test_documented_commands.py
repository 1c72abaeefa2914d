"""Every ``campaign …`` command README.md, docs/ and the demo suggest works in the demo folder.

The commands are read from the files, never listed here: each fenced code line and
each inline code span that starts with ``campaign `` (after a ``$ `` prompt or a
``.venv/bin/`` prefix). A usage line runs in its shortest form (``[optional]`` parts
dropped), every ``a|b`` alternative runs, and each placeholder (``FILE.csv``,
``CAMPAIGN``, ``DATE``...) takes a real value of the demo folder from ``PLACEHOLDERS``;
a placeholder missing from that table fails the test, so a new line is never skipped.

A span that only names a command in a sentence ("`campaign import`'s rules") is not
a whole command; those are listed in ``NAMES_ONLY`` and run with ``--help``, which at
least proves the name exists. Long-running commands (daemon, worker, serve, a polling
send) start, show they are up, get SIGTERM and must exit 0. ``forget`` and ``prune``
run last, since they erase what the others read.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pytest

from tests.demo_helpers import DemoShop, clean_env, printed_commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

DEMO_USER = "U000042"

# (the word before it, placeholder) -> value; a None word matches any word before it.
PLACEHOLDERS: dict[tuple[str | None, str], str] = {
    (None, "CAMPAIGN"): "winback",
    (None, "C"): "winback",
    (None, "X"): "winback",
    (None, "NAME"): "winback",
    ("--by", "NAME"): "alice",
    ("--previous-key-env", "NAME"): "CAMPAIGN_OLD_MODEL_KEY",
    (None, "USER"): DEMO_USER,
    (None, "ID"): DEMO_USER,
    (None, "DATE"): "2026-11-01",
    (None, "T"): "2026-11-01",
    (None, "DATETIME"): "2026-11-29T10:00:00Z",
    ("--slot", "..."): "2026-11-29T10:00:00Z",
    (None, "h"): "90",
    (None, "DAYS"): "400",
    (None, "TEXT"): "checked by the documented-commands test",
    (None, "L"): "en",
    (None, "F"): "json",
    (None, "H"): "127.0.0.1",
    ("--users", "N"): "300",
    ("--seed", "N"): "7",
    ("--port", "N"): "{server_port}",
    ("--health-port", "N"): "{health_port}",
    (None, "N"): "3",
    ("--dir", "PATH"): "{folder}/another-demo",
    ("--url", "URL"): "sqlite:///campaign.db",
    ("users", "FILE.csv"): "data/users.csv",
    ("products", "FILE.csv"): "data/products.csv",
    ("events", "FILE.csv"): "data/events.csv",
    ("events", "FILE.parquet"): "events.parquet",
    ("events", "FOLDER"): "lake/events/",
    ("responses", "FILE.csv"): "responses.csv",
    ("experiments", "FILE.csv"): "experiments.csv",
    ("suppressions", "FILE.csv"): "data/suppressions.csv",
    ("--output", "FILE.csv"): "out.csv",
    ("--rejects", "FILE"): "rejects.csv",
    ("--html", "FILE"): "page.html",
    ("--test-to", "FILE"): "seeds.txt",
    ("--previous-key-file", "FILE"): "model-signing.key",
    ("--previous-key-file", "OLD.key"): "model-signing.key",
}
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*(\.[a-z]+)?|OLD\.key|[CTFHLXNh]|\.\.\.")

# Spans that name a command inside a sentence rather than spell one out, with why.
NAMES_ONLY: dict[str, str] = {
    "campaign import": "the command group, named in prose",
    "campaign evaluate": "the command group, named in prose",
    "campaign pause": "names pause/resume in the pause_events table",
    "campaign prune": "the retention command, named in prose",
    "campaign forget": "the erasure command, named in prose",
    "campaign templates render": "named in prose; its usage lines run",
    "campaign import suppressions": "named in prose; its usage lines run",
    "campaign import experiments": "named in prose; its usage lines run",
    "campaign preview": "named in prose; its usage lines run",
    "campaign run": "named in prose; its usage lines run",
    "campaign train --as-of": "the benchmark's flags, named in prose",
    "campaign score --as-of --output": "the benchmark's flags, named in prose",
    "campaign score --as-of T --output": "the flags the benchmark passes, named in prose",
    "campaign recommend -k 10 --output": "the benchmark's flags, named in prose",
}

# Commands documented to fail in the demo folder: argv -> (exit code, what stderr says).
EXPECTED_FAILURES: dict[str, tuple[int, str]] = {
    # docs/templates.md: exit 1 when [shop] coupon_webhook_url is not set, as in the demo.
    "coupons announce": (1, "coupon_webhook_url: is not set"),
    # Each command gets a fresh demo folder, which has no console account.
    "users disable winback": (1, "console account not found: winback"),
    "users reset winback": (1, "console account not found: winback"),
    # The demo's winback run holds fewer randomised users than [uplift] min_treated and
    # min_control ask: the documented refusal. (`train uplift`, `evaluate uplift` and
    # `score uplift` succeed: the demo trained `retain` on the shop's past A/B test, and
    # the campaigns below the minimum are refused in one line each on stderr.)
    "train uplift --campaign winback": (1, "the uplift model needs at least 200 treated"),
}

# Demo invocations that rebuild a shop: test_demo_e2e.py runs these (at 300 users), so
# this test does not pay for another build; a plain `campaign demo` reuses the folder.
RUN_BY_THE_DEMO_TEST: dict[str, str] = {
    "demo --fresh": "test_campaign_demo_twice_changes_nothing_and_fresh_rebuilds_the_same_shop",
    "demo --users 300": "test_campaign_demo_twice_changes_nothing_and_fresh_rebuilds_the_same_shop",
}

# Commands documented to run until stopped: (what shows they are up, port to poll).
LONG_RUNNING = {"daemon", "worker", "serve", "send", "console"}
# What each prints to stderr once it is up: daemon and worker, serve, a polling send.
UP_MARKERS = ("daemon.started", "Application startup complete", "polling the outbox")

# Installation paths the docs name, and where they are in the demo folder.
PATHS = {"/etc/campaign/config.toml": "{folder}/config.toml"}

@dataclass(frozen=True)
class Documented:
    """One command as written, and where."""

    source: str
    text: str


def _code_lines(path: Path) -> Iterator[str]:
    """The lines of fenced blocks and the inline code spans of ``path``, split at ``&&``."""
    text = path.read_text(encoding="utf-8")
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
        elif in_block:
            yield from (part.strip() for part in line.split(" && "))
    prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        yield from (" ".join(part.split()) for part in span.split(" && "))


def _strip_prefix(line: str) -> str | None:
    """``line`` from its ``campaign`` on, or None when it is not a campaign command."""
    match = re.match(r"(\$ )?((\.\./)?\.venv/bin/)?(campaign( .*)?)$", line)
    if match is None or match.group(5) is None:
        return None
    return match.group(4)


def documented_commands() -> list[Documented]:
    """Every ``campaign …`` line of README.md, docs/*.md, in file order."""
    found: list[Documented] = []
    for path in DOCS:
        for line in _code_lines(path):
            command = _strip_prefix(line)
            if command is not None:
                found.append(Documented(str(path.relative_to(ROOT)), command))
    return found


def _drop_optional(text: str) -> str:
    while True:
        shorter = re.sub(r"\s*\[[^\[\]]*\]", "", text)
        if shorter == text:
            return text
        text = shorter


def normalise(text: str) -> list[list[str]]:
    """The argv lists (without ``campaign``) that run the documented ``text``.

    Raises:
        KeyError: a placeholder has no value in ``PLACEHOLDERS``.
    """
    text = re.sub(r"\s+#.*$", "", text).replace("\\|", "|")
    text = re.sub(r"\s+\|\s+\S.*$", "", text)  # a pipe into a pager: the command alone
    text = re.sub(r"\s*&$", "", text)  # backgrounded in a shell script
    text = _drop_optional(text)
    words = shlex.split(text)[1:]
    values: list[list[str]] = []
    previous: str | None = None
    for word in words:
        if _PLACEHOLDER.fullmatch(word):
            value = PLACEHOLDERS.get((previous, word)) or PLACEHOLDERS.get((None, word))
            if value is None:
                raise KeyError(f"{word} (after {previous})")
            values.append([value])
        elif word in PATHS:
            values.append([PATHS[word]])
        elif "DIR/" in word:
            values.append([word.replace("DIR/", "{folder}/")])
        elif "|" in word and not word.startswith("-"):
            values.append(word.split("|"))
        else:
            values.append([word])
        previous = word
    return [list(choice) for choice in product(*values)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _long_running(argv: list[str]) -> bool:
    words = argv[2:] if argv[:1] == ["--config"] else argv
    command = words[0] if words and not words[0].startswith("-") else ""
    return command in LONG_RUNNING and not (command == "send" and (
        "--once" in argv or "--requeue-dead" in argv))


def _run_bounded(argv: list[str], folder: Path, env: dict[str, str], port: int) -> str:
    """Start a command that runs until stopped; '' when it came up and stopped cleanly.

    Up means it logged that it started (``UP_MARKERS``) or its ``/healthz`` answers;
    then it gets SIGTERM and must exit 0.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", *argv], cwd=folder, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        said = "".join(list(stderr))
        if any(marker in said for marker in UP_MARKERS) or _healthy(port):
            break
        time.sleep(0.3)
    if process.poll() is not None:
        process.communicate()
        reader.join(5)
        return f"exited {process.returncode} before it was up: {''.join(stderr)[-1500:]}"
    if time.monotonic() >= deadline:
        process.kill()
        process.communicate()
        return "never came up within 120 s"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return "did not stop within 60 s of SIGTERM"
    process.communicate()
    reader.join(5)
    if process.returncode != 0:
        return f"exited {process.returncode} after SIGTERM: {''.join(stderr)[-1500:]}"
    return ""


def _prepare(folder: Path, words: tuple[str, ...] = ()) -> None:
    """The few files the documented commands name that the demo does not make."""
    if any(w.endswith(".parquet") or w.startswith("lake/") for w in words):
        _write_parquet_events(folder)
    for kind in ("users", "products", "events"):  # docs/import.md's `import users users.csv`
        shutil.copyfile(folder / "data" / f"{kind}.csv", folder / f"{kind}.csv")
    shutil.copyfile(folder / "config.toml", folder / "c.toml")  # README's `--config c.toml`
    (folder / "seeds.txt").write_text("seed@example.com\n", encoding="utf-8")
    (folder / "data" / "suppressions.csv").write_text(
        "address,channel,reason\nbounced@example.com,email,imported\n", encoding="utf-8")
    (folder / "responses.csv").write_text(
        "message_id,type,ts\nM-unknown,open,2026-11-02T10:00:00Z\n", encoding="utf-8")
    (folder / "experiments.csv").write_text(
        "user_id,campaign,group,assigned_at,converted\n"
        f"{DEMO_USER},spring,treatment,2026-10-01T10:00:00Z,true\n", encoding="utf-8")


def _write_parquet_events(folder: Path) -> None:
    """The demo's events as ``events.parquet`` and as a lake folder partitioned by type
    (``lake/events/type=view/part-0.parquet``...), every column as text."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    with (folder / "data" / "events.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = list(rows[0])
    pq.write_table(
        pa.table({name: [row[name] or None for row in rows] for name in names}),
        folder / "events.parquet", row_group_size=5_000,
    )
    others = [name for name in names if name != "type"]
    for kind in sorted({row["type"] for row in rows}):
        part = folder / "lake" / "events" / f"type={kind}"
        part.mkdir(parents=True)
        chosen = [row for row in rows if row["type"] == kind]
        pq.write_table(
            pa.table({name: [row[name] or None for row in chosen] for name in others}),
            part / "part-0.parquet",
        )


def test_every_documented_line_is_found_and_every_placeholder_is_known() -> None:
    commands = documented_commands()
    sources = {c.source for c in commands}
    assert {"README.md", "docs/operations.md", "docs/templates.md"} <= sources, sources
    assert len(commands) > 100
    unknown = []
    for command in commands:
        if command.text in NAMES_ONLY:
            continue
        try:
            normalise(command.text)
        except KeyError as exc:
            unknown.append(f"{command.source}: {command.text}: {exc}")
    assert not unknown, "placeholders without a value in PLACEHOLDERS:\n" + "\n".join(unknown)
    stale = set(NAMES_ONLY) - {c.text for c in commands}
    assert not stale, f"NAMES_ONLY lists spans no document has any more: {stale}"


def test_normalise_expands_usage_lines() -> None:
    assert normalise("campaign send [--once] [--requeue-dead [--campaign NAME]]") == [["send"]]
    assert normalise("campaign evaluate churn|recommend") == [
        ["evaluate", "churn"], ["evaluate", "recommend"]]
    assert normalise("campaign status [--format table\\|json\\|csv]") == [["status"]]
    assert normalise("campaign report | less") == [["report"]]
    assert normalise("campaign pause winback --reason \"legal review\" --by alice") == [
        ["pause", "winback", "--reason", "legal review", "--by", "alice"]]
    assert normalise("campaign forget USER") == [["forget", DEMO_USER]]
    with pytest.raises(KeyError, match="WIDGET"):
        normalise("campaign frobnicate WIDGET")


def _check(words: tuple[str, ...], folder: Path, sources: list[str]) -> str:
    """Run one documented command in ``folder``: '' when it did what its documents say."""
    server_port, health_port = _free_port(), _free_port()
    home = folder.parent / "home"  # `--install-completion` writes the shell's rc file there
    home.mkdir()
    env = clean_env(
        HOME=str(home), SHELL="/bin/bash",
        CAMPAIGN_SERVER__PORT=str(server_port), CAMPAIGN_DAEMON__HEALTH_PORT=str(health_port),
        CAMPAIGN_CONSOLE__PORT=str(server_port), CAMPAIGN_PASSWORD="documented-commands-pw",
        CAMPAIGN_OLD_MODEL_KEY=(folder / "model-signing.key").read_text(encoding="utf-8"),
    )
    argv = [word.format(folder=folder, server_port=server_port, health_port=health_port)
            for word in words]
    said = f"campaign {shlex.join(argv)} ({', '.join(sources)})"
    if _long_running(argv):
        served = "serve" in argv or "console" in argv
        problem = _run_bounded(argv, folder, env, server_port if served else health_port)
        return f"{said}: {problem}" if problem else ""
    if shlex.join(argv) in RUN_BY_THE_DEMO_TEST:
        return ""
    # `campaign demo` runs where README.md says, in the folder that holds campaign-demo/;
    # a confirmation prompt (forget, prune) gets the "y" a user would type.
    # Typed in a shell, as documented (`--install-completion` looks for that shell).
    typed = shlex.join([sys.executable, "-m", "campaign", *argv])
    done = subprocess.run(
        ["/bin/bash", "-c", f"{typed}; exit $?"],
        cwd=folder.parent if argv[0] == "demo" else folder, env=env,
        capture_output=True, text=True, timeout=300, input="y\n",
    )
    expected = EXPECTED_FAILURES.get(shlex.join(argv))
    if expected is not None:
        if (done.returncode, True) != (expected[0], expected[1] in done.stderr):
            return (f"{said}: expected exit {expected[0]} with {expected[1]!r}, got "
                    f"{done.returncode}: {done.stderr[-800:]}")
        return ""
    if done.returncode != 0:
        return f"{said}: exit {done.returncode}: {(done.stderr or done.stdout)[-800:]}"
    return ""


# Well over a hundred commands, each a fresh process, in one demo folder: minutes of
# work in one test (the other xdist worker runs the rest of the suite meanwhile).
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_every_documented_and_printed_command_works_in_the_demo_folder(
    demo_shop: DemoShop, tmp_path: Path,
) -> None:
    documented = documented_commands() + [
        Documented("campaign demo's output", text) for text in printed_commands(demo_shop.stdout)
    ]
    assert any(c.source == "campaign demo's output" for c in documented)

    runs: dict[tuple[str, ...], list[str]] = {}
    for command in documented:
        if command.text in NAMES_ONLY:
            names = list(itertools.takewhile(lambda w: not w.startswith("-"),
                                             command.text.split()[1:]))
            argv = [*names, "--help"]
            runs.setdefault(tuple(argv), []).append(command.source)
            continue
        for argv in normalise(command.text):
            runs.setdefault(tuple(argv), []).append(command.source)

    def check(number: int, words: tuple[str, ...]) -> str:
        """'' when the command did what its documents say, else what went wrong.

        Each command gets its own copy of the demo folder, as the demo left it, and its
        own ports, so no command depends on what another did before it.
        """
        folder = tmp_path / f"run-{number}" / "campaign-demo"
        shutil.copytree(demo_shop.folder, folder)
        _prepare(folder, words)
        try:
            return _check(words, folder, sorted(set(runs[words])))
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [problem for problem in pool.map(check, range(len(runs)), runs) if problem]
    missing = (set(RUN_BY_THE_DEMO_TEST) | set(EXPECTED_FAILURES)) - {
        shlex.join(argv) for argv in runs}
    assert not missing, f"RUN_BY_THE_DEMO_TEST lists commands no document has: {missing}"
    assert not failures, f"{len(failures)} of {len(runs)} commands failed:\n" + "\n".join(
        failures)
