"""Exercises of notebook 05 (training and overfitting): global batch size, the train-validation
gap, an experiment that shrinks the training set, and the cosine schedule with warm-up written
by hand.
"""

from __future__ import annotations

import math

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Prediction,
    expect_function,
    function_exercise,
    solution_from,
)

#: q3: the training pairs the experiment keeps, and the bounds on what the checker measures.
Q3_PAIRS = 64
Q3_MIN_TRAIN_ACCURACY = 0.9
Q3_MIN_GAP = 0.35

_Q3_SOLUTION = """\
small_images, small_ids, small_labels = load_split("match", "attributes", "train", limit=64)
seed_everything(0)
small_model = build_model("match", "concat", learning_rate=0.005, hidden_units=128)
small_model.fit(pipeline.dataset_from_arrays(small_images, small_ids, small_labels,
                                             batch_size=32, shuffle=True, seed=0),
                epochs=20, shuffle=False, verbose=0)  # the dataset shuffles itself
ex.q3.check(small_model)"""


def small_data_generalization(model) -> dict:
    """q3: train accuracy on the first ``Q3_PAIRS`` attributes training pairs, validation
    accuracy on the first 256 validation pairs, and their gap."""
    from mmcourse.data import pipeline
    from mmcourse.train import regularization
    from mmcourse.train.tasks import load_split

    train = pipeline.dataset_from_arrays(*load_split("match", "attributes", "train",
                                                     limit=Q3_PAIRS), batch_size=128)
    val = pipeline.dataset_from_arrays(*load_split("match", "attributes", "val", limit=256),
                                       batch_size=128)
    return regularization.generalization(model, train, val)


def _small_model(epochs=20):
    """q3's reference (and, trained briefly, a wrong answer); cached: it takes seconds."""
    if epochs not in _Q3_MODELS:
        from mmcourse.data import pipeline
        from mmcourse.matcher.model import build_model
        from mmcourse.seeding import seed_everything
        from mmcourse.train.tasks import load_split

        seed_everything(0)
        model = build_model("match", "concat", learning_rate=0.005, hidden_units=128)
        if epochs:
            model.fit(pipeline.dataset_from_arrays(
                *load_split("match", "attributes", "train", limit=Q3_PAIRS), batch_size=32,
                shuffle=True, seed=0), epochs=epochs, shuffle=False, verbose=0)
        _Q3_MODELS[epochs] = model
    return _Q3_MODELS[epochs]


_Q3_MODELS: dict = {}

#: q4: (initial learning rate, epochs, warm-up epochs) the schedule is checked on, every epoch.
Q4_SETTINGS = ((0.01, 11, 0), (0.003, 30, 3), (0.1, 5, 1), (0.02, 2, 0))


# q4's reference and solution: warm-up, then half a cosine down to 0 at the last epoch
def cosine_lr(initial_learning_rate, epochs, warmup_epochs, epoch):
    if epoch < warmup_epochs:
        return initial_learning_rate * (epoch + 1) / (warmup_epochs + 1)
    progress = (epoch - warmup_epochs) / (epochs - 1 - warmup_epochs)
    return initial_learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def _course_schedule(initial_learning_rate, epochs, warmup_epochs, epoch):
    """What q4 is checked against: the course's own schedule (notebook 05, section 2)."""
    from mmcourse.train.callbacks import cosine_schedule

    return cosine_schedule(initial_learning_rate, epochs, warmup_epochs)(epoch)


def _cosine_variant(warmup="ramp", span="epochs - 1", half=True):
    """Wrong answers to q4: the warm-up, the cosine's span or its half changed."""

    def schedule(initial, epochs, warmup_epochs, epoch):
        if epoch < warmup_epochs and warmup != "none":
            step = epoch + 1 if warmup == "ramp" else epoch
            return initial * step / (warmup_epochs + 1 if warmup == "ramp" else warmup_epochs)
        start = warmup_epochs if warmup != "none" else 0
        length = {"epochs - 1": epochs - 1 - start, "epochs": epochs - start}[span]
        cosine = math.cos(math.pi * (epoch - start) / length)
        return initial * (0.5 * (1 + cosine) if half else cosine)

    return schedule


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

    def check_small_data(model):
        if not (hasattr(model, "evaluate") and hasattr(model, "inputs")):
            raise Incorrect(f"pass the trained Keras model, got {type(model).__name__}.")
        measured = small_data_generalization(model)
        if measured["train_accuracy"] < Q3_MIN_TRAIN_ACCURACY:
            raise Incorrect(f"the checker measures a training accuracy of "
                            f"{measured['train_accuracy']:.3f} on the first {Q3_PAIRS} pairs; "
                            f"the bound is at least {Q3_MIN_TRAIN_ACCURACY}: train on exactly "
                            f"those pairs, for 20 epochs.")
        if measured["gap"] < Q3_MIN_GAP:
            raise Incorrect(f"the checker measures a gap of {measured['gap']:.3f} (train "
                            f"{measured['train_accuracy']:.3f}, validation "
                            f"{measured['val_accuracy']:.3f}); the bound is at least "
                            f"{Q3_MIN_GAP}. Train on the first {Q3_PAIRS} pairs only.")
        return measured["gap"]

    def cosine_at(initial, epochs, epoch):
        import math

        return initial * 0.5 * (1 + math.cos(math.pi * epoch / (epochs - 1)))

    return ExerciseSet("05", [
        function_exercise(
            name="q1",
            prompt="A function global_batch(per_replica_batch, replicas): the batch one "
                   "synchronous MirroredStrategy step consumes.",
            function=global_batch,
            cases=batch_cases,
            hints=["Every replica processes its own per-replica batch in the same step.",
                   "Multiply: per_replica_batch * replicas (strategy.num_replicas_in_sync)."],
            wrong=lambda: [lambda b, r: b, lambda b, r: b // r, lambda b, r: b + r,
                           lambda b, r: b * (r + 1), lambda b, r: None],
        ),
        function_exercise(
            name="q2",
            prompt="A function train_val_gap(history) returning the training accuracy minus "
                   "the validation accuracy at the last epoch of a History.history dict.",
            function=train_val_gap,
            cases=gap_cases,
            hints=["history['accuracy'] and history['val_accuracy'] are lists, one value per "
                   "epoch; [-1] is the last.",
                   "history['accuracy'][-1] - history['val_accuracy'][-1]"],
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
            prompt=f"Experiment. Section 3's model learned 256 training pairs with a gap of "
                   f"about 0.26. Predict first: what does a quarter of the data do to the gap? "
                   f"Train the same model (seed_everything(0), build_model('match', 'concat', "
                   f"learning_rate=0.005, hidden_units=128)) for 20 epochs on the first "
                   f"{Q3_PAIRS} training pairs only (batch_size=32, shuffled, no augmentation) "
                   f"and pass it. The checker measures its accuracy on those {Q3_PAIRS} pairs "
                   f"and on the first 256 validation pairs itself: the bounds are a training "
                   f"accuracy of at least {Q3_MIN_TRAIN_ACCURACY} and a gap of at least "
                   f"{Q3_MIN_GAP}.",
            checker=check_small_data,
            hints=["load_split('match', 'attributes', 'train', limit=64) gives the 64 pairs; "
                   "pipeline.dataset_from_arrays(..., batch_size=32, shuffle=True, seed=0) "
                   "batches them.",
                   "Fewer pairs are easier to memorise and say less about new pairs: the "
                   "training accuracy rises, the validation accuracy falls towards chance."],
            prediction=Prediction(
                f"what gap (training minus validation accuracy) do {Q3_PAIRS} pairs give? (256 "
                f"pairs: about 0.26)"),
            solution_code="ex.q3.predict(0.4)\n" + _Q3_SOLUTION,
            reference=_small_model,
            wrong=lambda: [_small_model(epochs=0),  # untrained: no gap, nothing learnt
                           _small_model(epochs=2),  # too short to memorise
                           0.45,  # a gap typed in: not a measurement
                           None],
        ),
        Exercise(
            name="q4",
            prompt="Mechanism. Write cosine_lr(initial_learning_rate, epochs, warmup_epochs, "
                   "epoch): the learning rate of section 2's schedule at an epoch (counting "
                   "from 0). During the warm-up it climbs linearly, initial * (epoch + 1) / "
                   "(warmup_epochs + 1); then it follows half a cosine from the initial rate "
                   "to 0 at the last epoch. The checker compares it with the course's "
                   "mmcourse.train.callbacks.cosine_schedule at every epoch of "
                   f"{len(Q4_SETTINGS)} settings (no warm-up, and warm-ups of 1 and 3 epochs).",
            checker=expect_function(_course_schedule, [
                (initial, epochs, warmup, epoch) for initial, epochs, warmup in Q4_SETTINGS
                for epoch in range(epochs)], atol=1e-9, rtol=1e-6),
            hints=["After the warm-up, progress = (epoch - warmup_epochs) / (epochs - 1 - "
                   "warmup_epochs) runs from 0 to 1.",
                   "0.5 * (1 + cos(pi * progress)) runs from 1 to 0: multiply it by the initial "
                   "rate."],
            solution_code=solution_from(cosine_lr, "ex.q4.check(cosine_lr)",
                                        imports="import math"),
            reference=lambda: cosine_lr,
            wrong=lambda: [
                lambda initial, epochs, warmup, epoch: cosine_at(initial, epochs, epoch),
                _cosine_variant(warmup="none"),  # the cosine from epoch 0, no warm-up
                _cosine_variant(warmup="from zero"),  # warm-up starts at 0, not initial / (w+1)
                _cosine_variant(span="epochs"),  # never reaches 0
                _cosine_variant(half=False),  # a whole cosine: negative rates
                lambda initial, epochs, warmup, epoch: None],
        ),
    ])
