"""The installable ``crosscam`` command: its subcommands hand over to ``run.py``, its
dependencies match requirements.txt, and (slow) ``pip install .`` gives a working command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import run
from crosscam import cli
from pipeline.config import PROJECT_ROOT, DetectorConfig
from tests.conftest import REPOSITORY_ROOT


def _requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement and not requirement.startswith("-"):
            names.append(requirement.split("==")[0].strip())
    return names


def _normalised(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dependencies_are_the_runtime_requirements() -> None:
    project = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == _requirement_names(REPOSITORY_ROOT / "requirements.txt")
    assert project["scripts"] == {"crosscam": "crosscam.cli:main"}
    pinned = {_normalised(name) for name in _requirement_names(REPOSITORY_ROOT / "constraints.txt")}
    assert {_normalised(name) for name in project["dependencies"]} <= pinned


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["run", "--streams", "cams.yaml", "--max-seconds", "5"],
            ["--streams", "cams.yaml", "--max-seconds", "5"],
        ),
        (["check", "--streams", "cams.yaml"], ["check", "--streams", "cams.yaml"]),
        (["inspect", "--runs", "runs"], ["inspect", "--runs", "runs"]),
    ],
)
def test_subcommands_call_run_py(
    command: list[str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        received.append(argv)
        return 3

    monkeypatch.setattr(run, "main", fake_main)
    assert cli.main(command) == 3
    assert received == [expected]


def test_usage_and_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert cli.main(["--help"]) == 0
    assert "crosscam run --streams cams.yaml" in capsys.readouterr().out
    assert cli.main(["serve"]) == cli.EXIT_USAGE
    assert "unknown subcommand 'serve'" in capsys.readouterr().err


def test_calibrate_is_imported_lazily(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["calibrate", "--help"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "pipeline.identity.calibrate" in error

    class Calibrate:
        @staticmethod
        def main(argv: list[str]) -> int:
            return len(argv)

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: Calibrate)
    assert cli.main(["calibrate", "a", "b"]) == 2


def test_calibrate_does_not_hide_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["calibrate"])


def _copy_sources(destination: Path) -> Path:
    """The checkout without its virtual environment, caches and run data."""
    ignored = shutil.ignore_patterns(
        ".git", ".venv*", "runs", "build", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(REPOSITORY_ROOT, destination, ignore=ignored)
    return destination


@pytest.mark.slow
def test_pip_install_gives_a_working_command(tmp_path: Path) -> None:
    """Offline: build the wheel with this environment's setuptools, install it into a fresh
    venv that sees this environment's packages, and run ``crosscam check`` on the bundled
    demo config from outside the checkout."""
    source = _copy_sources(tmp_path / "source")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("crosscam-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    default_weights = DetectorConfig().weights.relative_to(PROJECT_ROOT).as_posix()
    assert {"run.py", "crosscam/cli.py", "configs/demo.yaml", default_weights} <= names
    assert not any(name.startswith(("tests/", "benchmarks/", ".venv/")) for name in names)

    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", environment], check=True)
    site_packages = Path(
        sysconfig.get_paths(vars={"base": str(environment), "platbase": str(environment)})[
            "purelib"
        ]
    )
    (site_packages / "zz_crosscam_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    subprocess.run(
        [
            *pip,
            "--python",
            environment / "bin" / "python",
            "install",
            "--no-deps",
            "--no-index",
            wheel,
        ],
        check=True,
        capture_output=True,
    )
    command = environment / "bin" / "crosscam"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    environment_variables = {**os.environ, "YOLO_OFFLINE": "1"}
    environment_variables.pop("PYTHONPATH", None)
    checked = subprocess.run(
        [command, "check", "--streams", site_packages / "configs" / "demo.yaml"],
        cwd=outside,
        env=environment_variables,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    weights = subprocess.run(
        [
            environment / "bin" / "python",
            "-c",
            "from pipeline.config import DetectorConfig; print(DetectorConfig().weights)",
        ],
        cwd=outside,
        env=environment_variables,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(weights) == site_packages / default_weights
