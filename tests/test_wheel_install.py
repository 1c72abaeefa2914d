"""A real wheel, installed into a fresh virtual environment, runs away from any checkout.

The wheel must carry the default templates and the migrations (the build copies the
top-level folders into the package), and the installed product must find them there:
``db upgrade``, ``templates init``, ``templates lint`` and a small demo all run from a
folder with no checkout in sight. The dependencies come from this test environment's
site-packages (a ``.pth`` line) so the test needs no package index; `.ci/run` also
installs the wheel with its dependencies resolved from scratch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Built from a snapshot of the sources, not the checkout itself: the build writes
    # build/ and an egg-info beside the sources, and the other test workers import
    # (and write bytecode into) the same tree while this runs.
    source = tmp_path_factory.mktemp("source") / "campaign"
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
        ),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    [built] = out.glob("campaign-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its ``bin`` folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # Only a path line: this environment's .pth files (its editable install of the
    # checkout among them) are not processed, so `import campaign` finds the wheel.
    (Path(purelib) / "test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
         "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    environ["PATH"] = f"{bin_dir}{os.pathsep}{environ.get('PATH', '')}"
    return subprocess.run(
        [str(bin_dir / "campaign"), *args], cwd=cwd, env=environ,
        capture_output=True, text=True, timeout=600,
    )


def test_the_wheel_carries_the_templates_and_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in (ROOT / "templates", ROOT / "migrations"):
        for path in source.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                packaged = f"campaign/_shipped/{path.relative_to(ROOT).as_posix()}"
                assert packaged in names, f"{packaged} is missing from {wheel.name}"


def test_the_installed_product_finds_its_files_in_the_package(
    installed: Path, tmp_path: Path
) -> None:
    found = subprocess.run(
        [str(installed / "python"), "-c",
         "import campaign, campaign.common.shipped as s; "
         "print(campaign.__file__); print(s.templates_folder()); print(s.migrations_folder())"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()
    module, templates, migrations = (Path(line) for line in found)
    assert ROOT not in module.parents  # the wheel, not the checkout
    assert templates == module.parent / "_shipped" / "templates"
    assert (templates / "winback" / "en" / "email.txt").is_file()
    assert (migrations / "env.py").is_file()


def test_an_installed_product_upgrades_a_database_and_lints_a_copied_template_folder(
    installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text(
        '[database]\nurl = "sqlite:///campaign.db"\n\n'
        '[templates]\ndir = "shop-templates"\n'
    )
    # Without a folder, init fills the configured one, which lint then reads.
    copied = _run(installed, tmp_path, "templates", "init")
    assert copied.returncode == 0, copied.stderr
    assert "read this folder now" in copied.stdout
    assert (tmp_path / "shop-templates" / "winback" / "zh-CN" / "sms.txt").is_file()
    upgraded = _run(installed, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "campaign.db").stat().st_size > 0
    linted = _run(installed, tmp_path, "templates", "lint")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "shop-templates" in linted.stderr
    again = _run(installed, tmp_path, "templates", "init")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert again.stderr.count("\n") == 1  # one line, no traceback


def test_an_installed_product_runs_the_demo(installed: Path, tmp_path: Path) -> None:
    demo = _run(installed, tmp_path, "demo", "--users", "200", "--dir", "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (tmp_path / "demo" / "config.toml").is_file()
