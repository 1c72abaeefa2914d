"""The command line's small courtesies, through the real CLI (subprocesses where it matters).

Config errors all at once with "did you mean", unknown campaign names with a hint, no
empty database left by a failing command, shell completion, help without markup.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from campaign.cli import app

runner = CliRunner()
CAMPAIGN = [sys.executable, "-m", "campaign"]


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    environ.update(env)
    return subprocess.run(
        [*CAMPAIGN, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_config_errors_are_listed_together_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[delivery]\nconcurency = 3\nmax_attempts = 0\n\n"
        '[[campaigns]]\nname = "winback"\nholdout_shar = 0.2\n'
    )
    result = _cli(["templates", "lint"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: config.toml: 3 invalid settings",
        "config.toml: delivery.max_attempts: input should be greater than or equal to 1",
        "config.toml: delivery.concurency: unknown key (did you mean 'concurrency'?)",
        "config.toml: campaigns[0].holdout_shar: unknown key (did you mean 'holdout_share'?)",
    ]


def test_an_environment_override_error_names_the_variable(tmp_path: Path) -> None:
    result = _cli(["templates", "lint"], tmp_path, CAMPAIGN_DELIVERY__CONCURRENCY="lots")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: <defaults>: delivery.concurrency: input should be a valid")
    assert line.endswith("(set by environment variable CAMPAIGN_DELIVERY__CONCURRENCY)")
    typo = _cli(["templates", "lint"], tmp_path, CAMPAIGN_DELIVERY__CONCURENCY="3")
    assert typo.stderr.strip() == (
        "error: <defaults>: delivery.concurency: unknown key (did you mean 'concurrency'?) "
        "(set by environment variable CAMPAIGN_DELIVERY__CONCURENCY)"
    )
    assert not (tmp_path / "campaign.db").exists()


def test_an_unknown_campaign_name_gets_did_you_mean(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[database]\nurl = "{sqlite_url}"\n\n'
        '[channels.email]\nkind = "file"\npath = "outbox"\n\n'
        '[[campaigns]]\nname = "winback"\n'
        'variants = [{ name = "a", template = "winback" }]\n\n'
        '[[campaigns]]\nname = "care"\nvariants = [{ name = "a", template = "care" }]\n'
    )
    for args in (["pause", "winbak"], ["run", "winbak"], ["preview", "winbak"],
                 ["report", "winbak"], ["send", "--requeue-dead", "--campaign", "winbak"]):
        result = runner.invoke(app, ["--config", str(tmp_path / "config.toml"), *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.strip() == (
            "error: campaign not found: winbak (did you mean 'winback'?)"
        ), args
    far = runner.invoke(app, ["--config", str(tmp_path / "config.toml"), "pause", "zzz"])
    assert far.stderr.strip() == "error: campaign not found: zzz (known: care, winback)"


def test_a_failing_command_leaves_no_empty_database_behind(tmp_path: Path) -> None:
    for args in (["report"], ["preview", "winback"]):
        result = _cli(args, tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.strip().endswith(
            "campaign.db: no such database file; run 'campaign db upgrade' to create it"
        ), args
        assert list(tmp_path.iterdir()) == [], args
    created = _cli(["db", "upgrade"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "campaign.db").is_file()


def test_install_completion_writes_a_bash_completion_that_completes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    installed = subprocess.run(
        [str(bin_dir / "campaign"), "--install-completion"], env=env, capture_output=True,
        text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert installed.returncode == 0, installed.stderr
    assert "bash completion installed" in installed.stdout
    assert ".bash_completions/campaign.sh" in (home / ".bashrc").read_text()
    # A real bash sources what was installed and asks it to complete two words.
    script = (
        "source ~/.bashrc; "
        "COMP_WORDS=(campaign imp); COMP_CWORD=1; _campaign_completion campaign; "
        'echo "${COMPREPLY[@]}"; '
        "COMP_WORDS=(campaign import us); COMP_CWORD=2; _campaign_completion campaign; "
        'echo "${COMPREPLY[@]}"'
    )
    completed = subprocess.run(
        ["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert completed.stdout.split() == ["import", "users"], completed.stderr


# reStructuredText and Sphinx roles that belong in docstrings for developers, never in
# what `--help` shows a person.
RST_MARKUP = ("``", ":func:", ":class:", ":meth:", ":data:", ":mod:", ":attr:", "`_", ".. ")


def _help_pages() -> dict[str, str]:
    from typer.main import get_command

    pages: dict[str, str] = {}

    def walk(command: object, path: list[str]) -> None:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        pages[" ".join(["campaign", *path])] = result.output
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return pages


def test_no_help_page_shows_markup() -> None:
    pages = _help_pages()
    assert "campaign coupons export" in pages and len(pages) > 25
    leaks = {
        page: [line.strip() for line in text.splitlines() if any(m in line for m in RST_MARKUP)]
        for page, text in pages.items()
    }
    assert {page: lines for page, lines in leaks.items() if lines} == {}


def test_every_as_of_option_documents_the_same_default() -> None:
    pages = {name: text for name, text in _help_pages().items() if "--as-of" in text}
    assert {"campaign train", "campaign score", "campaign evaluate churn", "campaign segments",
            "campaign evaluate recommend", "campaign recommend", "campaign run",
            "campaign preview", "campaign report"} <= set(pages)
    for name, text in pages.items():
        option = " ".join(text.split("--as-of", 1)[1].split("--", 1)[0].split())
        assert "[clock] as_of when the config pins it, else" in option, (name, option)
        assert "newest event" not in option, name
