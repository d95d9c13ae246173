"""requirements.txt and environment.yml name the same packages at the same versions."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[normalise(name)] = version
    return pins


def conda_environment() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                name, version = line.split("==")
                pins[normalise(name)] = version
        elif not dep.startswith(("python=", "pip")) or dep.startswith("pip-"):
            name, version = dep.split("=")
            pins[normalise(name)] = version
    return pins


def test_requirements_are_fully_pinned() -> None:
    assert all(re.fullmatch(r"[0-9][0-9a-z.]*", v) for v in requirements().values())


def test_environment_mirrors_requirements() -> None:
    assert conda_environment() == requirements()


def test_constraints_agree_with_requirements() -> None:
    locked = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            locked[normalise(name)] = version.strip()
    for name, version in requirements().items():
        assert locked.get(name) == version, name
