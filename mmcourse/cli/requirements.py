"""The pinned requirements of ``doctor`` (notebook 00): requirements.txt's exact pins
against the installed distributions, read from package metadata without importing them.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

from mmcourse.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements.txt"
# Requirement name -> the import a course notebook needs. These decide the exit code.
ESSENTIAL = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "numpy": "numpy",
    "opencv-python-headless": "cv2",
    "matplotlib": "matplotlib",
    "jupyterlab": "jupyterlab",
}
# Distributions that provide the same import as a pinned one (the desktop OpenCV swap).
ALTERNATIVES = {
    "opencv-python-headless": (
        "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless",
    ),
    "tensorflow": ("tensorflow-cpu", "tensorflow-macos"),
}


@dataclass(frozen=True)
class Requirement:
    """One pinned line of requirements.txt: ``name==version``."""

    name: str
    version: str | None  # None: no pin known (requirements.txt unreadable)


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> list[Requirement]:
    """Pinned requirements from requirements.txt text; comments, blanks and options skipped.

    Extras are dropped (``tensorflow[and-cuda]==2.21.0`` gives ``tensorflow``).
    A line that is not an exact pin raises ``ValueError`` naming the line.
    """
    requirements = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s=<>!~,]+)",
                             line)
        if match is None:
            raise ValueError(f"requirements line {number} is not an exact pin "
                             f"'name==version': {raw.strip()!r}")
        requirements.append(Requirement(normalize(match.group(1)), match.group(3)))
    return requirements


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (or an alternative), else None."""
    for candidate in (name, *ALTERNATIVES.get(normalize(name), ())):
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_status(pinned: str | None, installed: str | None) -> str:
    """``ok`` when the installed version equals the pin (or there is no pin), ``missing``
    or ``mismatch`` else."""
    if installed is None:
        return "missing"
    return "ok" if pinned is None or installed == pinned else "mismatch"


def check_packages(requirements: list[Requirement], lookup=installed_version) -> list[dict]:
    """One row per requirement: name, pinned, installed, status, essential."""
    rows = []
    for requirement in requirements:
        installed = lookup(requirement.name)
        rows.append({
            "name": requirement.name,
            "pinned": requirement.version,
            "installed": installed,
            "status": package_status(requirement.version, installed),
            "essential": requirement.name in ESSENTIAL,
        })
    return rows
