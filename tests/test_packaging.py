"""Package metadata: pyproject.toml and Cargo.toml agree, and ``--version`` reports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import godottpd
import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")


def load(name: str) -> dict[str, Any]:
    with (ROOT / name).open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    return data


def test_cargo_and_pyproject_agree() -> None:
    project = load("pyproject.toml")["project"]
    package = load("Cargo.toml")["package"]
    assert package["version"] == project["version"]
    assert package["description"] == project["description"]
    assert package["license"] == project["license"] == "MIT"
    assert package["repository"] == project["urls"]["Repository"]
    assert package["homepage"] == project["urls"]["Homepage"]
    assert package["authors"] == [author["name"] for author in project["authors"]]
    assert project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_classifiers_cover_every_supported_python() -> None:
    project = load("pyproject.toml")["project"]
    assert project["requires-python"] == ">=3.9"
    versions = {
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    }
    assert versions == {f"3.{minor}" for minor in range(9, 15)}


def test_release_extra_pins_every_tool() -> None:
    release = load("pyproject.toml")["project"]["optional-dependencies"]["release"]
    assert all("==" in requirement for requirement in release), release
    names = {requirement.split("==")[0] for requirement in release}
    assert {"maturin", "ziglang", "auditwheel", "abi3audit", "twine"} <= names


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "godottpd", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"godottpd {godottpd.__version__}"
    assert godottpd.__version__ == load("pyproject.toml")["project"]["version"]
