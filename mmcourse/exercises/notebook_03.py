"""Exercises of notebook 03 (RNN math): one SimpleRNN step, LSTM parameters and gates, padding
masks, and an experiment with the forget gate's bias and vanishing gradients.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Prediction,
    expect_function,
    expect_value,
    function_exercise,
)

#: q5: the largest allowed decay ||dL/dx_49|| / ||dL/dx_0|| over 50 steps (a fresh LSTM: ~1e4).
MAX_GRADIENT_DECAY = 100.0

_Q5_SOLUTION = """\
forget_lstm = keras.layers.LSTM(32)
forget_lstm.build((None, 50, 16))
kernel, recurrent_kernel, bias = forget_lstm.get_weights()
bias[32:64] = 3.0  # the forget gate's block: i, f, c, o
forget_lstm.set_weights([kernel, recurrent_kernel, bias])
print(round(float(lstm_gradient_decay(forget_lstm)), 2))
ex.q5.check(forget_lstm)"""


def lstm_gradient_decay(layer) -> float:
    """q5: ||dL/dx_t|| at t=49 over t=0 for L = the sum of ``layer``'s last state, averaged
    over 32 fixed random sequences of 50 steps of 16 features (as in section 5)."""
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(5).normal(size=(32, 50, 16)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x))
    norms = np.linalg.norm(tape.gradient(loss, x).numpy(), axis=-1).mean(axis=0)
    with np.errstate(divide="ignore"):  # a gradient that vanished below float32: inf
        return float(np.float64(norms[-1]) / norms[0])


def _lstm(gate_bias=None, units=32):
    """q5's reference (forget bias 3) and wrong answers (another gate, or none)."""
    import keras

    layer = keras.layers.LSTM(units)
    layer.build((None, 50, 16))
    if gate_bias is not None:
        gate, value = gate_bias
        kernel, recurrent_kernel, bias = layer.get_weights()
        bias[gate * units:(gate + 1) * units] = value
        layer.set_weights([kernel, recurrent_kernel, bias])
    return layer


def notebook_03() -> ExerciseSet:
    """Exercises of notebook 03: one SimpleRNN step, LSTM parameters and gates, masks."""
    from mmcourse import scratch

    rng = np.random.default_rng(3)

    def step_case(batch, features, units):
        return (rng.normal(size=(batch, features)), rng.normal(size=(batch, units)),
                rng.normal(size=(features, units)) * 0.5, rng.normal(size=(units, units)) * 0.5,
                rng.normal(size=units) * 0.5)

    step_cases = [step_case(2, 3, 4), step_case(1, 5, 2), step_case(3, 1, 3)]

    def forget_kernel(kernel):
        units = kernel.shape[1] // 4
        return kernel[:, units:2 * units]

    kernel_cases = [(rng.normal(size=(3, 16)),), (rng.normal(size=(5, 8)),),
                    (rng.normal(size=(8, 8)),)]

    def padding_mask(token_ids):
        return token_ids != 0

    token_cases = [(np.array([[4, 9, 2, 0, 0], [1, 7, 0, 0, 0]]),),
                   (np.array([[3, 1, 5, 6, 8, 2]]),),
                   (np.array([[0, 0, 0], [2, 1, 0]]),)]

    from mmcourse.exercises import Incorrect

    def check_forget_bias(layer):
        if type(layer).__name__ != "LSTM":
            raise Incorrect(f"pass the keras.layers.LSTM layer itself, got "
                            f"{type(layer).__name__}.")
        if layer.units != 32:
            raise Incorrect(f"the layer has {layer.units} units; the experiment uses 32.")
        decay = lstm_gradient_decay(layer)
        if decay > MAX_GRADIENT_DECAY:
            raise Incorrect(f"the checker measures a decay of {decay:.3g} over 50 steps; the "
                            f"bound is at most {MAX_GRADIENT_DECAY:g}. Which gate multiplies "
                            f"the cell state from one step to the next?")
        return decay

    return ExerciseSet("03", [
        Exercise(
            name="q1",
            prompt="A function rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias) returning "
                   "one SimpleRNN step, tanh(x_t W + h_prev U + b), in Keras's weight layout.",
            checker=expect_function(scratch.simple_rnn_step, step_cases),
            hints=["Keras multiplies row vectors from the left: x_t @ kernel has shape "
                   "(batch, units), and so does h_prev @ recurrent_kernel.",
                   "np.tanh(x_t @ kernel + h_prev @ recurrent_kernel + bias)"],
            solution_code="def rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias):\n"
                          "    return np.tanh(x_t @ kernel + h_prev @ recurrent_kernel + bias)\n"
                          "\nex.q1.check(rnn_step)",
            reference=lambda: scratch.simple_rnn_step,
            wrong=lambda: [
                lambda x, h, w, u, b: np.tanh(x @ w + b),  # forgets the previous state
                lambda x, h, w, u, b: np.tanh(x @ w + h @ u.T + b),  # U transposed
                lambda x, h, w, u, b: scratch.sigmoid(x @ w + h @ u + b),  # wrong activation
                lambda x, h, w, u, b: x @ w + h @ u + b,  # no activation
                lambda x, h, w, u, b: np.maximum(x @ w + h @ u + b, 0),  # relu
                lambda x, h, w, u, b: None,  # forgot the return
            ],
        ),
        Exercise(
            name="q2",
            prompt="The number of parameters of keras.layers.LSTM(16) on 8 input features.",
            checker=expect_value(scratch.lstm_param_count(8, 16)),
            hints=["Each of the 4 gates (i, f, c, o) has its own input weights (d x u), "
                   "recurrent weights (u x u) and bias (u).",
                   "4 * (d*u + u*u + u) with d = 8, u = 16; or build the layer and call "
                   "count_params()."],
            solution_code="ex.q2.check(4 * (8 * 16 + 16 * 16 + 16))  # 1600\n"
                          "# or: layer = keras.layers.LSTM(16); layer.build((None, None, 8)); "
                          "layer.count_params()",
            reference=lambda: 4 * (8 * 16 + 16 * 16 + 16),
            wrong=lambda: [4 * (8 * 16 + 16 * 16 + 2 * 16),  # two biases, as in PyTorch/cuDNN
                           None, 8 * 16 + 16 * 16 + 16, 4 * (8 * 16 + 16 * 16), 4 * (8 * 16 + 16),
                           16 * 16 + 8 * 16],
        ),
        function_exercise(
            name="q3",
            prompt="A function forget_kernel(kernel) returning the forget gate's block of an "
                   "LSTM kernel of shape (features, 4*units), Keras gate order i, f, c, o.",
            function=forget_kernel,
            cases=kernel_cases,
            hints=["The gates sit side by side along the last axis, units columns each; "
                   "the forget gate is the second block (index 1).",
                   "units = kernel.shape[1] // 4; return kernel[:, units:2 * units]"],
            wrong=lambda: [
                lambda k: k[:, :k.shape[1] // 4],  # the input gate
                lambda k: k[:, 2 * (k.shape[1] // 4):3 * (k.shape[1] // 4)],  # candidate
                lambda k: k[:, 1::4],  # every fourth column: gates are blocks, not interleaved
                lambda k: k[:, k.shape[1] // 4:],  # the rest, not one block
                lambda k: k[:, k.shape[1] // 4 + 1:2 * (k.shape[1] // 4) + 1],  # off by one
                lambda k: None,  # forgot the return
            ],
        ),
        function_exercise(
            name="q4",
            prompt="A function padding_mask(token_ids) returning the boolean mask that "
                   "Embedding(mask_zero=True) passes to the LSTM (True = a real token).",
            function=padding_mask,
            cases=token_cases,
            dtype=bool,
            hints=["Token id 0 is the padding; every other id is a real token, even 1 "
                   "([UNK]).",
                   "token_ids != 0"],
            wrong=lambda: [
                lambda ids: ids == 0,  # inverted
                lambda ids: ids > 1,  # treats [UNK] as padding
                lambda ids: np.ones_like(ids, dtype=bool),  # masks nothing
                lambda ids: (ids != 0).astype(np.int32),  # 0/1 ints, not a boolean mask
                lambda ids: (ids != 0).tolist(),  # a list
                lambda ids: ids[:, 1:] != 0,  # off by one
            ],
        ),
        Exercise(
            name="q5",
            prompt="Experiment. Section 5 measured that a fresh LSTM's gradient at t=0 is about "
                   "10^4 times smaller than at t=49. Predict first: what does a larger "
                   "forget-gate bias do to that? Build keras.layers.LSTM(32) for 16 features "
                   "(layer.build((None, 50, 16))), set the forget gate's block of its bias "
                   "(Keras order i, f, c, o) to a value of your choice, keep the other weights, "
                   "and pass the layer. The checker measures the decay ||dL/dx_49|| / "
                   "||dL/dx_0|| itself (lstm_gradient_decay, section 5's recipe): it must be "
                   f"at most {MAX_GRADIENT_DECAY:g}.",
            checker=check_forget_bias,
            hints=["dc_t / dc_{t-1} is about the forget gate f_t = sigmoid(... + b_f): the "
                   "closer to 1, the less the gradient shrinks per step.",
                   "kernel, recurrent_kernel, bias = layer.get_weights(); "
                   "bias[32:64] = 3.0; layer.set_weights([kernel, recurrent_kernel, bias])"],
            prediction=Prediction(
                "with your forget-gate bias, how many times smaller is the gradient at t=0 than at"
                " t=49 (a fresh LSTM: about 10^4)?",
                unit="x"),
            solution_code="ex.q5.predict(1000)\n" + _Q5_SOLUTION,
            reference=lambda: _lstm((1, 3.0)),
            wrong=lambda: [_lstm(),  # Keras' default forget bias, 1
                           _lstm((0, 3.0)),  # the input gate
                           _lstm((1, -3.0)),  # the wrong sign: forgets faster
                           _lstm((1, 3.0), units=16),
                           keras_simple_rnn(),
                           0.78, None],
        ),
    ])


def keras_simple_rnn():
    """A wrong answer to q5: a SimpleRNN has no forget gate."""
    import keras

    return keras.layers.SimpleRNN(32)
