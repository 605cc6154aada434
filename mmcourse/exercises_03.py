"""Exercises of notebook 03 (RNN math): one SimpleRNN step, LSTM parameters and gates, padding
masks.

``notebook_03()`` returns the ``ExerciseSet`` that the notebook's ``## Exercises`` section uses
(``from mmcourse.course_exercises import notebook_03``); see ``mmcourse.exercises`` for the
API and ``tests/test_course_exercises.py`` for how each exercise is tested.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, expect_function, expect_value


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
        return np.asarray(token_ids) != 0

    token_cases = [(np.array([[4, 9, 2, 0, 0], [1, 7, 0, 0, 0]]),),
                   (np.array([[3, 1, 5, 6, 8, 2]]),),
                   (np.array([[0, 0, 0], [2, 1, 0]]),)]

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
        Exercise(
            name="q3",
            prompt="A function forget_kernel(kernel) returning the forget gate's block of an "
                   "LSTM kernel of shape (features, 4*units), Keras gate order i, f, c, o.",
            checker=expect_function(forget_kernel, kernel_cases),
            hints=["The gates sit side by side along the last axis, units columns each; "
                   "the forget gate is the second block (index 1).",
                   "units = kernel.shape[1] // 4; return kernel[:, units:2 * units]"],
            solution_code="def forget_kernel(kernel):\n"
                          "    units = kernel.shape[1] // 4\n"
                          "    return kernel[:, units:2 * units]\n\nex.q3.check(forget_kernel)",
            reference=lambda: forget_kernel,
            wrong=lambda: [
                lambda k: k[:, :k.shape[1] // 4],  # the input gate
                lambda k: k[:, 2 * (k.shape[1] // 4):3 * (k.shape[1] // 4)],  # candidate
                lambda k: k[:, 1::4],  # every fourth column: gates are blocks, not interleaved
                lambda k: k[:, k.shape[1] // 4:],  # the rest, not one block
                lambda k: k[:, k.shape[1] // 4 + 1:2 * (k.shape[1] // 4) + 1],  # off by one
                lambda k: None,  # forgot the return
            ],
        ),
        Exercise(
            name="q4",
            prompt="A function padding_mask(token_ids) returning the boolean mask that "
                   "Embedding(mask_zero=True) passes to the LSTM (True = a real token).",
            checker=expect_function(padding_mask, token_cases, dtype=bool),
            hints=["Token id 0 is the padding; every other id is a real token, even 1 "
                   "([UNK]).",
                   "token_ids != 0"],
            solution_code="def padding_mask(token_ids):\n    return token_ids != 0\n\n"
                          "ex.q4.check(padding_mask)",
            reference=lambda: padding_mask,
            wrong=lambda: [
                lambda ids: ids == 0,  # inverted
                lambda ids: ids > 1,  # treats [UNK] as padding
                lambda ids: np.ones_like(ids, dtype=bool),  # masks nothing
                lambda ids: (ids != 0).astype(np.int32),  # 0/1 ints, not a boolean mask
                lambda ids: (ids != 0).tolist(),  # a list
                lambda ids: ids[:, 1:] != 0,  # off by one
            ],
        ),
    ])
