"""mmcourse: the helper package of the multimodal deep learning course.

Importing it is instant: no TensorFlow is imported until a function needs it,
so that `python -m mmcourse doctor` works even when TensorFlow is broken.
Each helper's docstring names the notebook that introduces it.
"""

from mmcourse.paths import DATA_DIR, NOTEBOOKS_DIR, REPO_ROOT, RUNS_DIR
from mmcourse.seeding import seed_everything

__version__ = "0.1.0"

__all__ = ["DATA_DIR", "NOTEBOOKS_DIR", "REPO_ROOT", "RUNS_DIR", "__version__", "seed_everything"]
