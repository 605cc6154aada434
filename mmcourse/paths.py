"""Where the course keeps its files (introduced in notebook 00).

The package is installed in editable mode from the repository, so paths are
relative to the checkout. `MMCOURSE_DATA` overrides the data folder, `MMCOURSE_RUNS` the
runs folder (the grader gives each notebook its own).
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DATA_DIR = Path(os.environ.get("MMCOURSE_DATA", REPO_ROOT / "data"))
RUNS_DIR = Path(os.environ.get("MMCOURSE_RUNS", REPO_ROOT / "runs"))
