"""The code style rules in pyproject.toml hold for the package, the tests and the notebooks."""

import subprocess
import sys

from mmcourse import REPO_ROOT


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_test_skips_when_a_pinned_dependency_is_missing():
    # A broken install must fail the suite loudly (issue 26), not turn hundreds of tests into skips.
    marker = "importor" + "skip("
    offenders = [f"{path.name}:{number}"
                 for path in sorted((REPO_ROOT / "tests").glob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if marker in line]
    assert not offenders, f"import the dependency instead of skipping: {offenders}"
