"""Exercises of notebook 00 (environment setup): shapes, devices, seeds, and an experiment on
reproducible training.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_value, function_exercise

#: q4: the data the tiny model trains on (64 examples of 4 features; the target is their sum).
Q4_X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
Q4_Y = Q4_X.sum(axis=1, keepdims=True)

#: q4: two runs from the same seed must agree this closely (their final losses).
SAME_SEED_TOLERANCE = 1e-6

_Q4_SOLUTION = """\
def train_once(seed):
    seed_everything(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(Q4_X, Q4_Y, epochs=3, batch_size=16, verbose=0)
    return history.history["loss"][-1]


ex.q4.check(train_once)"""


def _train_once(seed):
    """q4's reference: the tiny model of the prompt, trained from ``seed``."""
    import keras

    from mmcourse.seeding import seed_everything

    seed_everything(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return float(model.fit(Q4_X, Q4_Y, epochs=3, batch_size=16, verbose=0).history["loss"][-1])


def _final_loss(train_once, seed):
    from mmcourse.exercises import Incorrect, NotAttempted, ____

    try:
        loss = train_once(seed)
    except Exception as error:  # the learner's bug, reported, not raised
        raise Incorrect(f"train_once({seed}) raised {type(error).__name__}: {error}") from None
    if loss is ____:
        raise NotAttempted
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating)):
        raise Incorrect(f"train_once({seed}) returned {loss!r}; return the last epoch's loss as "
                        f"a number: history.history['loss'][-1].")
    return float(loss)


def notebook_00() -> ExerciseSet:
    """Exercises of notebook 00: shapes, devices, seeds, and reproducible training."""
    import re

    from mmcourse.exercises import Incorrect

    def seeded_draws(seed):
        return np.random.default_rng(seed).normal(size=3)

    def check_cpu_device(answer):
        if not isinstance(answer, str):
            raise Incorrect(f"give the device as a string such as '/GPU:0', got "
                            f"{type(answer).__name__}.")
        if re.fullmatch(r"/?(device:)?cpu:0", answer.strip(), flags=re.IGNORECASE) is None:
            raise Incorrect(f"{answer!r} is not the first CPU: TensorFlow names devices "
                            f"'/<TYPE>:<index>', counting from 0.")

    reference_loss = {}

    def check_reproducible(train_once):
        if not callable(train_once):
            raise Incorrect(f"pass your function itself (no parentheses), got "
                            f"{type(train_once).__name__}.")
        first, second = _final_loss(train_once, 0), _final_loss(train_once, 0)
        if abs(first - second) > SAME_SEED_TOLERANCE:
            raise Incorrect(f"two runs with seed 0 ended at losses {first:.6f} and {second:.6f}: "
                            f"call seed_everything(seed) inside train_once, before building "
                            f"the model.")
        if abs(_final_loss(train_once, 1) - first) <= SAME_SEED_TOLERANCE:
            raise Incorrect("seeds 0 and 1 gave the same loss: does train_once use its seed, "
                            "and train a freshly built model?")
        if "loss" not in reference_loss:
            reference_loss["loss"] = _train_once(0)
        if abs(first - reference_loss["loss"]) > 1e-4:
            raise Incorrect(f"seed 0 ends at loss {first:.6f}; the model of the prompt ends at "
                            f"{reference_loss['loss']:.6f}: check the layers, optimizer, "
                            f"epochs and batch size.")
        return "identical" if first == second else "different"

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
        function_exercise(
            name="q3",
            prompt="A function seeded_draws(seed) returning 3 draws from "
                   "np.random.default_rng(seed).normal(): the same numbers for the same seed.",
            function=seeded_draws,
            cases=[(0,), (42,), (2026,)],
            hints=["Make a new Generator inside the function from the seed: "
                   "np.random.default_rng(seed).",
                   "Generator.normal(size=3) returns an array of 3 draws."],
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
            prompt="Experiment. Write train_once(seed): seed_everything(seed), build "
                   "keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation='relu'), "
                   "keras.layers.Dense(1)]), compile it with optimizer='sgd' and loss='mse', fit "
                   "it on Q4_X, Q4_Y for 3 epochs (batch_size=16, verbose=0) and return the last "
                   "epoch's loss. The checker trains it with seeds 0, 0 and 1: the two seed-0 "
                   f"losses must agree within {SAME_SEED_TOLERANCE:g}, seed 1 must give another "
                   "loss, and seed 0 must give the loss of the checker's own run (within 1e-4).",
            checker=check_reproducible,
            hints=["Call seed_everything(seed) first, inside the function, before the model is "
                   "built: the seed sets the initial weights and the batch order.",
                   "history = model.fit(...); return history.history['loss'][-1]"],
            prediction=Prediction(
                'two runs after seed_everything(0): are their final losses "identical" to the last'
                ' digit, or "different"?',
                choices=("identical", "different")),
            solution_code="ex.q4.predict('identical')\n" + _Q4_SOLUTION,
            reference=lambda: _train_once,
            wrong=lambda: [
                lambda seed: 0.5,  # a constant: every seed "agrees"
                lambda seed: _train_once(0),  # ignores its seed
                lambda seed: _train_once(seed + 1),  # off by one
                _unseeded_train_once,  # seeds nothing: two runs differ
                lambda seed: [_train_once(seed)],  # a list
                lambda seed: None,  # forgot the return
            ],
        ),
    ])


def _unseeded_train_once(seed):
    """A wrong answer to q4: the model is built and trained without seeding."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return float(model.fit(Q4_X, Q4_Y, epochs=3, batch_size=16, verbose=0).history["loss"][-1])
