"""requirements.txt and environment.yml name the same pinned versions."""

import re

from mmcourse import REPO_ROOT

PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#]+)")


def pins(path):
    found = {}
    for line in (REPO_ROOT / path).read_text(encoding="utf-8").splitlines():
        match = PIN.match(line.split("#")[0])
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_requirements_pin_every_package_exactly():
    text = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    entries = [line for line in lines if line]
    assert entries and all("==" in line for line in entries), entries
    for required in ("tensorflow", "keras", "numpy", "opencv-python-headless", "matplotlib",
                     "jupyterlab", "nbval", "pytest", "tqdm"):
        assert required in pins("requirements.txt"), required


def test_environment_yml_matches_requirements():
    assert pins("environment.yml") == pins("requirements.txt")
