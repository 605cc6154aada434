"""Video tubelets by hand: ViViT's tubelets and their embedding, equal to a strided
``Conv3D`` (notebook 13).
"""

from __future__ import annotations

import numpy as np

from mmcourse.configs import positive_int
from mmcourse.scratch.checks import check_array, check_bias


def tubeletify(videos, tubelet_size) -> np.ndarray:
    """Cut videos into non-overlapping tubelets, as ViViT reads them (Arnab et al. 2021).

    ``videos`` (N, T, H, W, C), ``tubelet_size`` (t, p, p) or (t, ph, pw) ->
    (N, (T / t)(H / ph)(W / pw), t ph pw C): tubelets in (time, row, column) order, each
    flattened in (frame, row, column, channel) order, the layout of a ``Conv3D`` kernel.
    Introduced in notebook 13."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"videos must be 5-D (N, T, H, W, C), got shape {videos.shape}")
    if isinstance(tubelet_size, (int, np.integer)) and not isinstance(tubelet_size, bool):
        tubelet_size = (tubelet_size,) * 3
    if not isinstance(tubelet_size, (tuple, list)) or len(tubelet_size) != 3:
        raise ValueError(f"tubelet_size must be an int or (t, ph, pw), got {tubelet_size!r}")
    t, ph, pw = (positive_int("tubelet_size", s) for s in tubelet_size)
    n, frames, height, width, channels = videos.shape
    if frames % t or height % ph or width % pw:
        raise ValueError(f"videos (N, T, H, W, C) = {videos.shape} must split evenly into "
                         f"tubelets of tubelet_size {(t, ph, pw)}")
    grid = videos.reshape(n, frames // t, t, height // ph, ph, width // pw, pw, channels)
    grid = grid.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return grid.reshape(n, (frames // t) * (height // ph) * (width // pw), t * ph * pw * channels)


def tubelet_embedding(videos, kernel, bias=None) -> np.ndarray:
    """ViViT's tubelet embedding by hand: each tubelet (``tubeletify``) flattened and
    projected, tokens = tubelets @ W + b, equal to ``keras.layers.Conv3D(filters,
    kernel_size=(t, p, p), strides=(t, p, p))`` with the same ``kernel`` (t, p, p, C,
    filters) and ``bias`` (filters,), its output (N, T', H', W', filters) reshaped to
    (N, T' H' W', filters). Introduced in notebook 13."""
    kernel = check_array("kernel", kernel, 5, layout="(t, ph, pw, C, filters)")
    videos = check_array("videos", videos, 5, layout="(N, T, H, W, C)")
    if videos.shape[-1] != kernel.shape[3]:
        raise ValueError(f"kernel has C={kernel.shape[3]} but videos have {videos.shape[-1]} "
                         f"channels: videos {videos.shape}, kernel {kernel.shape}")
    tubelets = tubeletify(videos, kernel.shape[:3])
    tokens = tubelets @ kernel.reshape(-1, kernel.shape[-1])
    if bias is not None:
        tokens = tokens + check_bias(bias, kernel.reshape(-1, kernel.shape[-1]), "filters")
    return tokens
