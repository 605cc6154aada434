"""A vision transformer's patches by hand: images cut into flattened square patches
(notebook 07).
"""

from __future__ import annotations

import numpy as np


def patchify(images, patch_size: int) -> np.ndarray:
    """Cut images into non-overlapping square patches, as a vision transformer reads them.

    ``images`` (N, H, W, C) -> (N, (H / p) (W / p), p p C): patches in row-major order over
    the grid (left to right, then top to bottom), each flattened in (row, column, channel)
    order, the order of ``tf.image.extract_patches`` reshaped to (N, -1, p p C). H and W
    must be multiples of p = ``patch_size``. Introduced in notebook 07.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) \
            or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, H, W, C), got shape {images.shape}")
    n, height, width, channels = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image height and width must be multiples of patch_size "
                         f"{patch_size}, got H={height}, W={width} (images {images.shape})")
    rows, columns = height // patch_size, width // patch_size
    grid = images.reshape(n, rows, patch_size, columns, patch_size, channels)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(n, rows * columns,
                                                    patch_size * patch_size * channels)
