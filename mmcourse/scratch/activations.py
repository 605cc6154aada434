"""Activation functions by hand and their derivatives, as Keras names them (notebook 02).
"""

from __future__ import annotations

import numpy as np


def relu(z):
    """max(z, 0), element-wise. Introduced in notebook 02."""
    return np.maximum(z, 0)


def sigmoid(z):
    """1 / (1 + exp(-z)), computed without overflow. Introduced in notebook 02."""
    z = np.asarray(z)
    out = np.empty_like(z, dtype=np.result_type(z, np.float32))
    positive = z >= 0
    out[positive] = 1 / (1 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1 + exp_z)
    return out


def tanh(z):
    """The hyperbolic tangent, element-wise. Introduced in notebook 02."""
    return np.tanh(z)


def softmax(z, axis: int = -1):
    """exp(z) / sum(exp(z)) along ``axis``, shifted by the max for stability.
    Introduced in notebook 02."""
    z = np.asarray(z)
    shifted = np.exp(z - z.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _identity(z):
    return z


ACTIVATIONS = {"sigmoid": sigmoid, "relu": relu, "tanh": tanh, "softmax": softmax}


def activation_function(name):
    """The activation function called ``name`` (None or "linear": identity).

    Unknown names get a ValueError listing the choices. Introduced in notebook 02
    (shared with notebook 03).
    """
    if name is None or name == "linear":
        return _identity
    if not isinstance(name, str):
        raise TypeError(f"activation must be None or a name such as 'relu', got "
                        f"{type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose None or one of "
                         f"{sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def activation_backward(name, output, grad_output):
    """dLoss/dz for ``output = activation(z)``, given dLoss/doutput.

    Written in terms of the output (sigmoid' = y(1-y), tanh' = 1-y², relu' = [y>0],
    softmax's Jacobian-vector product along the last axis). Introduced in notebook 02
    (shared with notebook 03).
    """
    activation_function(name)  # validates the name
    if name is None or name == "linear":
        return grad_output
    if name == "relu":
        return grad_output * (output > 0)
    if name == "sigmoid":
        return grad_output * output * (1 - output)
    if name == "tanh":
        return grad_output * (1 - output * output)
    # softmax: J^T g = y * (g - <g, y>)
    return output * (grad_output - np.sum(grad_output * output, axis=-1, keepdims=True))
