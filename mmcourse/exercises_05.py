"""Exercises of notebook 05 (training and overfitting): global batch size, the train-validation
gap, restoring the best weights, a cosine schedule.

``notebook_05()`` returns the ``ExerciseSet`` that the notebook's ``## Exercises`` section uses
(``from mmcourse.course_exercises import notebook_05``); see ``mmcourse.exercises`` for the
API and ``tests/test_course_exercises.py`` for how each exercise is tested.
"""

from __future__ import annotations

from mmcourse.exercises import Exercise, ExerciseSet, expect_function, expect_value


def notebook_05() -> ExerciseSet:
    """Exercises of notebook 05: global batch size, the train-validation gap, the callback
    that restores the best weights, the learning rate of a cosine schedule."""
    from mmcourse.exercises import Incorrect

    def global_batch(per_replica_batch, replicas):
        return per_replica_batch * replicas

    batch_cases = [(32, 2), (64, 8), (16, 1), (8, 3)]

    history = {"accuracy": [0.61, 0.78, 0.90, 0.97], "val_accuracy": [0.60, 0.70, 0.72, 0.71],
               "loss": [0.66, 0.48, 0.29, 0.12], "val_loss": [0.67, 0.58, 0.57, 0.63]}

    def train_val_gap(history):
        return history["accuracy"][-1] - history["val_accuracy"][-1]

    gap_cases = [(history,), ({"accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.6]},),
                 ({"accuracy": [0.8], "val_accuracy": [0.85]},)]

    def check_callback(answer):
        if not isinstance(answer, str):
            raise Incorrect(f"answer with the callback's class name as a string, got "
                            f"{type(answer).__name__}.")
        name = answer.strip().removeprefix("keras.callbacks.")
        if name in ("ModelCheckpoint", "BackupAndRestore"):
            raise Incorrect(f"{name} writes files, but does not put the best weights back into "
                            "the model at the end of fit.")
        if name != "EarlyStopping":
            raise Incorrect(f"{answer!r} is not the callback that, with "
                            "restore_best_weights=True, ends training with the best epoch's "
                            "weights.")

    def cosine_at(initial, epochs, epoch):
        import math

        return initial * 0.5 * (1 + math.cos(math.pi * epoch / (epochs - 1)))

    return ExerciseSet("05", [
        Exercise(
            name="q1",
            prompt="A function global_batch(per_replica_batch, replicas): the batch one "
                   "synchronous MirroredStrategy step consumes.",
            checker=expect_function(global_batch, batch_cases),
            hints=["Every replica processes its own per-replica batch in the same step.",
                   "Multiply: per_replica_batch * replicas (strategy.num_replicas_in_sync)."],
            solution_code="def global_batch(per_replica_batch, replicas):\n"
                          "    return per_replica_batch * replicas\n\n"
                          "ex.q1.check(global_batch)",
            reference=lambda: global_batch,
            wrong=lambda: [lambda b, r: b, lambda b, r: b // r, lambda b, r: b + r,
                           lambda b, r: b * (r + 1), lambda b, r: None],
        ),
        Exercise(
            name="q2",
            prompt="A function train_val_gap(history) returning the training accuracy minus "
                   "the validation accuracy at the last epoch of a History.history dict.",
            checker=expect_function(train_val_gap, gap_cases),
            hints=["history['accuracy'] and history['val_accuracy'] are lists, one value per "
                   "epoch; [-1] is the last.",
                   "history['accuracy'][-1] - history['val_accuracy'][-1]"],
            solution_code="def train_val_gap(history):\n"
                          "    return history['accuracy'][-1] - history['val_accuracy'][-1]\n\n"
                          "ex.q2.check(train_val_gap)",
            reference=lambda: train_val_gap,
            wrong=lambda: [
                lambda h: h["val_accuracy"][-1] - h["accuracy"][-1],  # sign flipped
                lambda h: h["accuracy"][0] - h["val_accuracy"][0],  # first epoch
                lambda h: max(h["accuracy"]) - max(h["val_accuracy"]),  # best, not last
                lambda h: h["loss"][-1] - h["val_loss"][-1],  # losses
                lambda h: h["accuracy"][-2] - h["val_accuracy"][-2],  # off by one epoch
                lambda h: None,  # forgot the return
            ],
        ),
        Exercise(
            name="q3",
            prompt="Which keras.callbacks class, given restore_best_weights=True, leaves the "
                   "model with the weights of its best validation epoch? Answer with its "
                   "class name as a string.",
            checker=check_callback,
            hints=["It watches val_loss and stops when it has not improved for `patience` "
                   "epochs.",
                   "keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)"],
            solution_code='ex.q3.check("EarlyStopping")',
            reference=lambda: "EarlyStopping",
            wrong=lambda: ["ModelCheckpoint", "BackupAndRestore", "ReduceLROnPlateau", 3, None,
                           "keras.callbacks.ModelCheckpoint", "Early Stopping"],
        ),
        Exercise(
            name="q4",
            prompt="With mmcourse.callbacks.cosine_schedule(0.01, epochs=11) (no warm-up), "
                   "what learning rate does epoch 5 (counting from 0) get?",
            checker=expect_value(cosine_at(0.01, 11, 5), atol=1e-9),
            hints=["The cosine goes from the initial rate at epoch 0 to 0 at the last epoch, "
                   "epoch 10.",
                   "Halfway there: 0.01 * 0.5 * (1 + cos(pi * 5 / 10))."],
            solution_code="from mmcourse.callbacks import cosine_schedule\n"
                          "ex.q4.check(cosine_schedule(0.01, epochs=11)(5))",
            reference=lambda: cosine_at(0.01, 11, 5),
            wrong=lambda: [0.01, 0.0, cosine_at(0.01, 11, 6), 0.01 * 5 / 10 + 1e-4,
                           cosine_at(0.01, 12, 5),  # divides by epochs, not epochs - 1
                           cosine_at(0.01, 11, 4), None],
        ),
    ])
