"""Argument checks shared by the by-hand layers: arrays, biases and positive ints, with
errors that name the argument and say what was expected (notebook 02, used up to 13).
"""

from __future__ import annotations

import numpy as np


def check_array(name: str, x, ndim=None, *, layout: str = "", context: str = "") -> np.ndarray:
    """``x`` as a floating NumPy array, or a clear error that names ``name``.

    Accepts NumPy arrays, nested lists, tf.Tensors and Keras variables. Floating
    dtypes are kept (float32 stays float32); integers and booleans become float64.
    ``ndim`` is an int or a tuple of allowed ranks; ``layout`` (e.g. "(N, H, W, C)")
    and ``context`` (e.g. the other argument's shape) are added to the message.
    Introduced in notebook 02 (shared with notebook 03).
    """
    if x is None or isinstance(x, (str, bytes, dict, set)) or callable(x):
        raise TypeError(f"{name} must be an array-like of numbers, got {type(x).__name__}")
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf.Tensor, Keras variable
        x = x.numpy()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise TypeError(f"{name} must be an array-like of numbers ({error})") from None
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype} "
                        f"({type(x).__name__})")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            ranks = " or ".join(f"{n}-D" for n in allowed)
            message = f"{name} must be {ranks}"
            if layout:
                message += f" {layout}"
            message += f", got shape {array.shape}"
            if context:
                message += f"; {context}"
            raise ValueError(message)
    return array


def check_bias(bias, kernel, outputs_name: str):
    """``bias`` as an array of shape (kernel.shape[-1],), or None; a clear error otherwise."""
    if bias is None:
        return None
    bias = check_array("bias", bias)
    outputs = kernel.shape[-1]
    if bias.shape != (outputs,):
        raise ValueError(f"bias must have shape ({outputs},) to match kernel {kernel.shape} "
                         f"({outputs_name}={outputs}), got bias {bias.shape}")
    return bias
