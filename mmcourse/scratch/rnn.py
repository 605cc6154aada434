"""SimpleRNN and LSTM by hand, step by step and over a sequence, with backpropagation
through time, equal to Keras with the same weights (notebook 03).
"""

from __future__ import annotations

import numpy as np

from mmcourse.scratch.activations import activation_backward, activation_function
from mmcourse.scratch.checks import check_array

# Keras layouts: kernel (features, G*units), recurrent_kernel (units, G*units),
# bias (G*units,), with G = 1 for SimpleRNN and G = 4 for LSTM in the gate order
# i, f, c, o (input, forget, candidate cell, output).

LSTM_GATES = ("i", "f", "c", "o")

_EMBEDDING_HINT = (
    "2-D input looks like token ids (batch, time): pass them through an Embedding layer "
    "first (keras.layers.Embedding, or embedding_table[token_ids] in NumPy) to get "
    "(batch, time, features) vectors"
)


def _shape_of(value) -> tuple:
    """The shape of an array-like (NumPy, list, tf.Tensor) for error messages."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else np.shape(value)


def _rnn_weights(kernel, recurrent_kernel, bias, features: int, gates: int, x_shape: tuple,
                 x_name: str = "x"):
    """Validate Keras-layout RNN weights against ``features``; return them and ``units``."""
    kernel = check_array("kernel", kernel, 2, layout="(features, units)" if gates == 1
                         else f"(features, {gates}*units)", context=f"{x_name} {x_shape}")
    if kernel.shape[0] != features:
        raise ValueError(f"kernel has input dim {kernel.shape[0]} but {x_name} has {features} "
                         f"features: {x_name} {x_shape}, kernel {kernel.shape}")
    if kernel.shape[1] == 0 or kernel.shape[1] % gates:
        raise ValueError(f"kernel must have {gates}*units columns (gates i, f, c, o side by "
                         f"side), got kernel {kernel.shape}")
    units = kernel.shape[1] // gates
    wanted = "(units, units)" if gates == 1 else f"(units, {gates}*units)"
    recurrent_kernel = check_array("recurrent_kernel", recurrent_kernel)
    if recurrent_kernel.shape != (units, gates * units):
        raise ValueError(f"recurrent_kernel must be {wanted} = {(units, gates * units)} to "
                         f"match kernel {kernel.shape}, got recurrent_kernel "
                         f"{recurrent_kernel.shape}")
    if bias is None:  # a layer built with use_bias=False
        bias = np.zeros(gates * units, dtype=kernel.dtype)
    bias = check_array("bias", bias)
    if bias.shape != (gates * units,):
        length = "units" if gates == 1 else f"{gates}*units"
        raise ValueError(f"bias must have shape ({length},) = ({gates * units},) to match "
                         f"kernel {kernel.shape}, got bias {bias.shape}")
    return kernel, recurrent_kernel, bias, units


def _rnn_state(name: str, state, batch: int, units: int, x_name: str, x_shape: tuple,
               kernel_shape: tuple, dtype):
    """``state`` as a (batch, units) array of ``dtype``; zeros when None."""
    if state is None:
        return np.zeros((batch, units), dtype=dtype)
    state = check_array(name, state)
    if state.shape != (batch, units):
        raise ValueError(f"{name} must have shape (batch, units) = {(batch, units)} for "
                         f"{x_name} {x_shape} and kernel {kernel_shape}, got {name} "
                         f"{state.shape}")
    return state.astype(dtype, copy=False)


def _rnn_mask(mask, x_shape: tuple):
    """``mask`` as a (batch, time) bool array (True = a real step), or None."""
    if mask is None:
        return None
    if hasattr(mask, "numpy") and not isinstance(mask, np.ndarray):
        mask = mask.numpy()
    mask = np.asarray(mask)
    if mask.shape != x_shape[:2]:
        raise ValueError(f"mask must have shape (batch, time) = {x_shape[:2]} for x {x_shape}, "
                         f"got mask {mask.shape}")
    if mask.dtype != bool:
        if mask.dtype.kind not in "biu" or not np.isin(mask, (0, 1)).all():
            raise TypeError(f"mask must hold booleans (True = real step, False = padding), "
                            f"got dtype {mask.dtype}")
        mask = mask.astype(bool)
    return mask


def _rnn_inputs(x, kernel, recurrent_kernel, bias, gates: int, states: dict, mask):
    """Validate everything a recurrent layer gets; return arrays in one float dtype."""
    hint = f". {_EMBEDDING_HINT}" if np.ndim(x) == 2 else ""
    x = check_array("x", x, 3, layout="(batch, time, features)",
                    context=f"kernel {_shape_of(kernel)}{hint}")
    kernel, recurrent_kernel, bias, units = _rnn_weights(
        kernel, recurrent_kernel, bias, x.shape[2], gates, x.shape)
    dtype = np.result_type(x, kernel, recurrent_kernel, bias)
    x, kernel, recurrent_kernel, bias = (a.astype(dtype, copy=False)
                                         for a in (x, kernel, recurrent_kernel, bias))
    initial = {name: _rnn_state(name, value, x.shape[0], units, "x", x.shape, kernel.shape, dtype)
               for name, value in states.items()}
    return x, kernel, recurrent_kernel, bias, units, initial, _rnn_mask(mask, x.shape)


def _step_inputs(x_t, h_prev, kernel, recurrent_kernel, bias, gates: int):
    """Validate the arguments of one recurrent step (x_t is (batch, features))."""
    x_t = check_array("x_t", x_t, 2, layout="(batch, features)",
                      context=f"kernel {_shape_of(kernel)}")
    kernel, recurrent_kernel, bias, units = _rnn_weights(
        kernel, recurrent_kernel, bias, x_t.shape[1], gates, x_t.shape, x_name="x_t")
    h_prev = _rnn_state("h_prev", h_prev, x_t.shape[0], units, "x_t", x_t.shape, kernel.shape,
                        np.result_type(x_t, kernel))
    return x_t, h_prev, kernel, recurrent_kernel, bias


def simple_rnn(x, kernel, recurrent_kernel, bias, h0=None, *, mask=None, activation="tanh"):
    """Every hidden state of ``keras.layers.SimpleRNN``: h_t = tanh(x_t W + h_{t-1} U + b).

    ``x`` is (batch, time, features); ``kernel`` W (features, units),
    ``recurrent_kernel`` U (units, units) and ``bias`` b (units,) as in
    ``layer.get_weights()`` (bias None for ``use_bias=False``). ``h0`` (batch, units)
    defaults to zeros. ``mask`` (batch, time), True for real steps: a padded step
    keeps the previous state, as Keras does. Returns (batch, time, units), the
    same as ``SimpleRNN(units, return_sequences=True)``. Introduced in notebook 03.

    Keras quirk: with an ``initial_state`` and a *leading* padded step, Keras
    outputs zeros there (its final state still equals ours); this function
    returns the carried state h0, which is what the recurrence means.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 1, {"h0": h0}, mask)
    act = activation_function(activation)
    inputs_projected = x @ kernel + bias  # all time steps at once: (batch, time, units)
    h = initial["h0"]
    hidden_states = np.empty(x.shape[:2] + (units,), dtype=x.dtype)
    for t in range(x.shape[1]):
        h_new = act(inputs_projected[:, t] + h @ recurrent_kernel)
        h = h_new if mask is None else np.where(mask[:, t, None], h_new, h)
        hidden_states[:, t] = h
    return hidden_states


def simple_rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias, activation="tanh"):
    """One SimpleRNN step: tanh(x_t W + h_prev U + b).

    ``x_t`` is (batch, features), ``h_prev`` (batch, units); returns (batch, units).
    Introduced in notebook 03.
    """
    x_t, h_prev, kernel, recurrent_kernel, bias = _step_inputs(
        x_t, h_prev, kernel, recurrent_kernel, bias, 1)
    return activation_function(activation)(x_t @ kernel + h_prev @ recurrent_kernel + bias)


def simple_rnn_backward(x, kernel, recurrent_kernel, bias, grad_hidden_states, h0=None, *,
                        mask=None, activation="tanh", return_grad_h0=False):
    """Backpropagation through time for ``simple_rnn``.

    ``grad_hidden_states`` is dL/dh_t for every t, (batch, time, units) (zeros
    where the loss does not use h_t). Walking back from the last step, each
    h_{t-1} collects the gradient that flows through U from step t:

        da_t = (dL/dh_t + carry_t) * tanh'(a_t),   carry_{t-1} = da_t U^T

    Returns ``(grad_x, grad_kernel, grad_recurrent_kernel, grad_bias)`` with the
    shapes of the inputs, plus ``grad_h0`` when ``return_grad_h0``.
    Introduced in notebook 03.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 1, {"h0": h0}, mask)
    grad_hidden_states = check_array("grad_hidden_states", grad_hidden_states)
    expected = x.shape[:2] + (units,)
    if grad_hidden_states.shape != expected:
        raise ValueError(f"grad_hidden_states must have the shape of the hidden states "
                         f"(batch, time, units) = {expected} for x {x.shape} and kernel "
                         f"{kernel.shape}, got grad_hidden_states {grad_hidden_states.shape}")
    act = activation_function(activation)
    batch, steps, _ = x.shape
    inputs_projected = x @ kernel + bias
    previous = np.empty((batch, steps, units), dtype=x.dtype)  # h_{t-1} for every t
    activated = np.empty((batch, steps, units), dtype=x.dtype)  # act(a_t), before masking
    h = initial["h0"]
    for t in range(steps):
        previous[:, t] = h
        activated[:, t] = act(inputs_projected[:, t] + h @ recurrent_kernel)
        h = activated[:, t] if mask is None else np.where(mask[:, t, None], activated[:, t], h)

    grad_pre = np.empty_like(activated)  # dL/da_t
    carry = np.zeros((batch, units), dtype=x.dtype)  # dL/dh_t from the steps after t
    for t in reversed(range(steps)):
        grad_h = grad_hidden_states[:, t] + carry
        keep = 1.0 if mask is None else mask[:, t, None]
        grad_pre[:, t] = activation_backward(activation, activated[:, t], grad_h * keep)
        carry = grad_pre[:, t] @ recurrent_kernel.T + grad_h * (1 - keep)
    grad_x = grad_pre @ kernel.T
    grad_kernel = np.einsum("ntf,ntu->fu", x, grad_pre)
    grad_recurrent_kernel = np.einsum("ntv,ntu->vu", previous, grad_pre)
    grad_bias = grad_pre.sum(axis=(0, 1))
    grads = (grad_x, grad_kernel, grad_recurrent_kernel, grad_bias)
    return grads + (carry,) if return_grad_h0 else grads


def _lstm_gates(inputs_projected_t, h_prev, recurrent_kernel, act, recurrent_act):
    z_i, z_f, z_c, z_o = np.split(inputs_projected_t + h_prev @ recurrent_kernel, 4, axis=-1)
    return {"i": recurrent_act(z_i), "f": recurrent_act(z_f), "c": act(z_c),
            "o": recurrent_act(z_o)}


def lstm_gates(x_t, h_prev, kernel, recurrent_kernel, bias, activation="tanh",
               recurrent_activation="sigmoid"):
    """The four LSTM gates of one step, as a dict in Keras order i, f, c, o.

    z = x_t W + h_prev U + b is split into four blocks of ``units`` columns:
    i = σ(z_i), f = σ(z_f), c = tanh(z_c) (the candidate), o = σ(z_o).
    Introduced in notebook 03.
    """
    x_t, h_prev, kernel, recurrent_kernel, bias = _step_inputs(
        x_t, h_prev, kernel, recurrent_kernel, bias, 4)
    return _lstm_gates(x_t @ kernel + bias, h_prev, recurrent_kernel,
                       activation_function(activation), activation_function(recurrent_activation))


def lstm_step(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias, activation="tanh",
              recurrent_activation="sigmoid"):
    """One LSTM step; returns ``(h, c)``, each (batch, units).

    c = f * c_prev + i * c̃ and h = o * tanh(c), with the gates of ``lstm_gates``.
    Introduced in notebook 03.
    """
    gates = lstm_gates(x_t, h_prev, kernel, recurrent_kernel, bias, activation,
                       recurrent_activation)
    batch, units = gates["i"].shape
    c_prev = _rnn_state("c_prev", c_prev, batch, units, "x_t", _shape_of(x_t),
                        _shape_of(kernel), gates["i"].dtype)
    c = gates["f"] * c_prev + gates["i"] * gates["c"]
    return gates["o"] * activation_function(activation)(c), c


def lstm(x, kernel, recurrent_kernel, bias, h0=None, c0=None, *, mask=None, activation="tanh",
         recurrent_activation="sigmoid", return_cell_states=False):
    """Every hidden state of ``keras.layers.LSTM``, (batch, time, units).

    Weights in Keras layout with the gates side by side in the order i, f, c, o:
    ``kernel`` (features, 4*units), ``recurrent_kernel`` (units, 4*units),
    ``bias`` (4*units,) (None for ``use_bias=False``). ``h0`` and ``c0`` (batch,
    units) default to zeros. ``mask`` (batch, time), True for real steps: a padded
    step keeps the previous h and c, as Keras does (see ``simple_rnn`` for the
    one difference with an initial state). With ``return_cell_states`` returns
    ``(hidden_states, cell_states)``. Introduced in notebook 03.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 4, {"h0": h0, "c0": c0}, mask)
    act, recurrent_act = activation_function(activation), activation_function(recurrent_activation)
    inputs_projected = x @ kernel + bias  # (batch, time, 4*units)
    h, c = initial["h0"], initial["c0"]
    hidden_states = np.empty(x.shape[:2] + (units,), dtype=x.dtype)
    cell_states = np.empty_like(hidden_states)
    for t in range(x.shape[1]):
        gates = _lstm_gates(inputs_projected[:, t], h, recurrent_kernel, act, recurrent_act)
        c_new = gates["f"] * c + gates["i"] * gates["c"]
        h_new = gates["o"] * act(c_new)
        if mask is None:
            h, c = h_new, c_new
        else:
            keep = mask[:, t, None]
            h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        hidden_states[:, t], cell_states[:, t] = h, c
    return (hidden_states, cell_states) if return_cell_states else hidden_states


def lstm_param_count(features: int, units: int, use_bias: bool = True) -> int:
    """Parameters of ``LSTM(units)`` on ``features`` inputs: 4 * (d*u + u*u + u).
    Introduced in notebook 03."""
    for name, value in (("features", features), ("units", units)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return 4 * (features * units + units * units + (units if use_bias else 0))
