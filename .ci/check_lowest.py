"""Fail unless every package pinned in .ci/lowest-constraints.txt is installed at exactly
that version, and every pin equals the floor pyproject.toml declares for it."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def main() -> int:
    pins: dict[str, str] = {}
    for line in (ROOT / ".ci" / "lowest-constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, pinned = line.split("==")
            pins[_name(name)] = pinned.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = (
        list(project["dependencies"]) + list(extras["test"]) + list(extras["mysql"])
        + list(extras["parquet"])
    )
    problems = []
    for requirement in declared:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
        if match is None:
            problems.append(f"{requirement}: no '>=' floor")
            continue
        name, floor = _name(match.group(1)), match.group(2)
        if name not in pins or Version(pins[name]) != Version(floor):
            problems.append(f"{name}: floor {floor} but lowest-constraints pins {pins.get(name)}")
    for name, pinned in pins.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            problems.append(f"{name}: pinned {pinned} but not installed")
            continue
        if Version(installed) != Version(pinned):
            problems.append(f"{name}: pinned {pinned} but {installed} is installed")
    for problem in problems:
        print(f"lowest versions: {problem}", file=sys.stderr)
    print(f"lowest versions: {len(pins)} pins checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
