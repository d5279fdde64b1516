"""pyproject.toml is the single list of dependencies (environment.yml mirrors it exactly) and of the shipped data files."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Extras that conda users get through environment.yml; `fid` is opt-in (it pulls torchvision, see pyproject.toml).
MIRRORED_EXTRAS = ("book", "dev")


def _normalise(requirement: str) -> tuple[str, str]:
    """('Name_x', '>=1.0') -> ('name-x', '>=1.0'): PEP 503 name, specifier without spaces."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"unparsable requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def pyproject_requirements(pyproject: dict) -> set[tuple[str, str]]:
    """Runtime dependencies plus the mirrored extras, normalised."""
    project = pyproject["project"]
    reqs = list(project["dependencies"])
    for extra in MIRRORED_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return {_normalise(r) for r in reqs}


def environment_requirements(env: dict) -> set[tuple[str, str]]:
    """The pip section of environment.yml (less the editable install of the project itself), normalised."""
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_normalise(r) for r in pip if not r.startswith("-e")}


def mismatch(pyproject: dict, env: dict) -> str:
    """A readable description of what one side has that the other lacks ('' when they agree)."""
    a, b = pyproject_requirements(pyproject), environment_requirements(env)
    lines = [f"only in pyproject.toml: {sorted(a - b)}"] if a - b else []
    lines += [f"only in environment.yml: {sorted(b - a)}"] if b - a else []
    return "; ".join(lines)


def _load() -> tuple[dict, dict]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return pyproject, env


def test_environment_yml_mirrors_pyproject() -> None:
    pyproject, env = _load()
    assert mismatch(pyproject, env) == ""


def test_mismatch_is_detected_in_both_directions() -> None:
    pyproject, env = _load()
    pyproject["project"]["dependencies"].append("rich>=13")
    assert "only in pyproject.toml" in mismatch(pyproject, env)
    pyproject, env = _load()
    next(d for d in env["dependencies"] if isinstance(d, dict))["pip"].append("rich>=13")
    assert "only in environment.yml" in mismatch(pyproject, env)
    pyproject, env = _load()
    pyproject["project"]["dependencies"] = [
        "numpy>=2.0" if r.startswith("numpy") else r for r in pyproject["project"]["dependencies"]
    ]
    assert mismatch(pyproject, env) != ""  # a changed lower bound is a disagreement too


def test_console_script_and_module_entry_point() -> None:
    pyproject, _ = _load()
    assert pyproject["project"]["scripts"]["jitlib"] == "jitlib.cli:main"
    assert (ROOT / "jitlib" / "__main__.py").is_file()


def test_package_data_ships_every_asset_and_preset() -> None:
    """A file under jitlib/assets or jitlib/presets that no package-data pattern matches would be missing from a
    wheel: an installed jitlib (Colab) would lack the shipped checkpoint, proxy classifier or result grid."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "jitlib"
    ]
    package = ROOT / "jitlib"
    files = [
        p.relative_to(package).as_posix()
        for folder in ("assets", "presets")
        for p in (package / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert files

    def shipped(name: str) -> bool:  # setuptools globs: '*' stays inside one path segment
        return any(
            name.count("/") == pattern.count("/") and fnmatch.fnmatch(name, pattern) for pattern in patterns
        )

    assert not [name for name in files if not shipped(name)], patterns
