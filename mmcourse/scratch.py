"""NumPy implementations of the layers, proven equal to Keras (notebooks 02 and 03).

Weights use Keras layouts, so ``layer.get_weights()`` can be passed straight in.
"""

from __future__ import annotations

import numpy as np

# --- dense, convolution and pooling (notebook 02) ---------------------------


# --- recurrent layers (notebook 03) ------------------------------------------
