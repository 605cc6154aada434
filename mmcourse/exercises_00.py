"""Exercises of notebook 00 (environment setup): shapes, devices, seeds and parameter counts.

``notebook_00()`` returns the ``ExerciseSet`` that the notebook's ``## Exercises`` section uses
(``from mmcourse.course_exercises import notebook_00``); see ``mmcourse.exercises`` for the
API and ``tests/test_course_exercises.py`` for how each exercise is tested.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, expect_function, expect_value


def notebook_00() -> ExerciseSet:
    """Exercises of notebook 00: shapes, devices, seeds and parameter counts."""
    import re

    from mmcourse.exercises import Incorrect

    def reference_draws(seed):
        return np.random.default_rng(seed).normal(size=3)

    def check_cpu_device(answer):
        if not isinstance(answer, str):
            raise Incorrect(f"give the device as a string such as '/GPU:0', got "
                            f"{type(answer).__name__}.")
        if re.fullmatch(r"/?(device:)?cpu:0", answer.strip(), flags=re.IGNORECASE) is None:
            raise Incorrect(f"{answer!r} is not the first CPU: TensorFlow names devices "
                            f"'/<TYPE>:<index>', counting from 0.")

    return ExerciseSet("00", [
        Exercise(
            name="q1",
            prompt="The shape of tf.matmul(a, b) for a of shape (2, 3) and b of shape (3, 4).",
            checker=expect_value((2, 4)),
            hints=["A matrix product (m, k) @ (k, n) has shape (m, n).",
                   "Write the shape as a tuple of ints, or use tuple(tensor.shape)."],
            solution_code="a = tf.ones((2, 3))\nb = tf.ones((3, 4))\n"
                          "ex.q1.check(tuple(tf.matmul(a, b).shape))  # (2, 4)",
            reference=lambda: (2, 4),
            wrong=lambda: [(3, 3), (2, 3), (4, 2), 8, (2, 3, 4), None, "(2, 4)"],
        ),
        Exercise(
            name="q2",
            prompt="The device string to pass to tf.device(...) to run ops on the first CPU.",
            checker=check_cpu_device,
            hints=["Devices are named '/<TYPE>:<index>', like '/GPU:0'.",
                   "Indices count from 0; tf.config.list_logical_devices('CPU') lists them."],
            solution_code='ex.q2.check("/CPU:0")\n'
                          'with tf.device("/CPU:0"):\n'
                          '    y = tf.matmul(tf.ones((2, 3)), tf.ones((3, 4)))',
            reference=lambda: "/CPU:0",
            wrong=lambda: ["/GPU:0", "/CPU:1", "cpu", 0, "cpu:0:1", "/CPU:0:1", "/CPU:10",
                           "/device:CPU:1", None],
        ),
        Exercise(
            name="q3",
            prompt="A function seeded_draws(seed) returning 3 draws from "
                   "np.random.default_rng(seed).normal(): the same numbers for the same seed.",
            checker=expect_function(reference_draws, [(0,), (42,), (2026,)]),
            hints=["Make a new Generator inside the function from the seed: "
                   "np.random.default_rng(seed).",
                   "Generator.normal(size=3) returns an array of 3 draws."],
            solution_code="def seeded_draws(seed):\n"
                          "    return np.random.default_rng(seed).normal(size=3)\n\n"
                          "ex.q3.check(seeded_draws)",
            reference=lambda: reference_draws,
            wrong=lambda: [
                lambda seed: np.random.normal(size=3),  # global state: ignores the seed
                lambda seed: np.random.default_rng(0).normal(size=3),  # always seed 0
                lambda seed: np.random.default_rng(seed).normal(size=2),
                lambda seed: np.random.default_rng(seed).uniform(size=3),
                lambda seed: np.random.default_rng(seed + 1).normal(size=3),  # off by one
                lambda seed: np.random.default_rng(seed).normal(size=(3, 1)),
                lambda seed: None,  # forgot the return
            ],
        ),
        Exercise(
            name="q4",
            prompt="The number of parameters of keras.layers.Dense(8) applied to 4 input features.",
            checker=expect_value(40),
            hints=["A Dense layer has a weight per (input, unit) pair plus one bias per unit.",
                   "Build it and ask Keras: layer.build((None, 4)); layer.count_params()."],
            solution_code="layer = keras.layers.Dense(8)\nlayer.build((None, 4))\n"
                          "ex.q4.check(layer.count_params())  # 4 * 8 + 8 = 40",
            reference=lambda: 40,
            wrong=lambda: [32, 36, 48, 12, 39, 41, None, "40"],
        ),
    ])
