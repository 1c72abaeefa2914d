"""The deployment files: systemd units that `systemd-analyze verify` accepts, and a
Dockerfile and units whose `campaign` command lines the real CLI accepts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
INSTALLED_CAMPAIGN = "/opt/campaign/bin/campaign"


def _exec_start(unit: Path) -> list[str]:
    [line] = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def _accepted_by_the_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``campaign ARGS --help``: exit 0 only when every command and option exists."""
    return subprocess.run(
        [sys.executable, "-m", "campaign", *args, "--help"],
        capture_output=True, text=True, timeout=120,
    )


def test_there_is_a_unit_for_the_daemon_and_for_workers() -> None:
    assert {unit.name for unit in UNITS} == {
        "campaign-daemon.service", "campaign-worker@.service"
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_each_systemd_unit_verifies_cleanly(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("systemd-analyze is not installed (apt-get install systemd)")
    assert analyze is not None
    # The unit names the installed path; here the product runs from this environment.
    campaign = Path(sys.executable).with_name("campaign")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED_CAMPAIGN, str(campaign)))
    name = copy.name.replace("@.service", "@1.service")
    verified = subprocess.run(
        [analyze, "verify", "--man=no", name], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    # Unknown keys and bad values are only warnings: any output is a failure.
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_each_unit_runs_a_command_the_cli_accepts(unit: Path) -> None:
    program, *args = _exec_start(unit)
    assert program == INSTALLED_CAMPAIGN
    accepted = _accepted_by_the_cli(args)
    assert accepted.returncode == 0, accepted.stderr


def test_the_dockerfile_installs_the_wheel_and_runs_a_command_the_cli_accepts() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip wheel" in text and "USER campaign" in text
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    command = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entrypoint == ["campaign"]
    accepted = _accepted_by_the_cli(command)
    assert accepted.returncode == 0, accepted.stderr
