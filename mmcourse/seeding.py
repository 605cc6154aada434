"""Seeds and determinism (introduced in notebook 00).

NumPy, Keras and TensorFlow are imported inside the function, so that
`import mmcourse` (and with it the doctor) works when any of them is broken.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy


def seed_everything(seed: int = 42) -> numpy.random.Generator:
    """Seed Python, NumPy and Keras, and make TensorFlow ops deterministic.

    Returns a fresh ``numpy.random.Generator`` for the caller's own randomness.
    Introduced in notebook 00.
    """
    import numpy as np  # noqa: PLC0415

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras  # noqa: PLC0415  (kept lazy: `import mmcourse` must not load TensorFlow)
    import tensorflow as tf  # noqa: PLC0415

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed)
