"""The trainer core that every trainer shares (notebook 04; your own folder in notebook 09;
CLIP in 07, the VLM in 08, PaliGemma in 11, CLAP and video in 13): ``TrainConfig`` (the fit
options), ``Splits`` (the three datasets and their sizes), ``fit_logged`` (fit, one log line
per epoch, timed), ``warmup_cosine`` (the contrastive trainers' learning-rate schedule),
``fit_summary`` (the result keys of a ``fit_logged`` run) and ``fit_and_evaluate``
(``fit_logged``, then the test split and the result the matcher's trainers return, built
here once).

``mmcourse.train.tasks.train`` brings the course data, ``mmcourse.apps.owndata.train_folder``
a folder of your own; each builds its splits and its model, then calls ``fit_and_evaluate``
and adds its own keys to the result. ``train.clip``, ``train.clap``, ``train.video``,
``train.hub`` and the stages of ``train.vlm`` take their options as a ``TrainConfig`` and
fit with ``fit_logged``. TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmcourse.configs import check_positive_ints, is_int, is_number

#: The keys of ``fit_and_evaluate``'s result, in order: what every trainer's result holds.
RESULT_KEYS = ("test_accuracy", "test_loss", "accuracy_by_type", "params", "train_seconds",
               "seconds_per_epoch", "epochs_run", "seed", "batch_size", "learning_rate",
               "train_examples", "test_examples", "history", "strategy", "replicas",
               "initial_epoch", "stopped_early", "weights_sha256")


@dataclass(frozen=True)
class TrainConfig:
    """How to fit: ``epochs``, ``batch_size`` (the global batch), Adam's ``learning_rate``,
    ``seed``, ``patience`` (early stopping on the validation loss, best weights restored;
    None: off), ``schedule`` (epoch -> learning rate, e.g. ``callbacks.cosine_schedule``;
    None: constant) and ``validate`` (evaluate the validation split after each epoch).
    ``epochs``, ``batch_size`` and ``learning_rate`` left at None take the trainer's defaults
    (``resolved``). A bad value is a ``ValueError`` naming the field. The CLIP, CLAP, video
    and VLM trainers (``fit_logged``) use the first four fields. Introduced in notebook 04."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    patience: int | None = None
    schedule: Callable | None = None
    validate: bool = True

    def __post_init__(self):
        check_positive_ints(self, (), ("epochs", "batch_size", "patience"))
        if self.learning_rate is not None and not (
                is_number(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got "
                             f"{self.learning_rate!r}")
        if not is_int(self.seed):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if self.schedule is not None and not callable(self.schedule):
            raise ValueError(f"schedule must be a function epoch -> learning rate, got "
                             f"{self.schedule!r}")
        if not isinstance(self.validate, bool):
            raise ValueError(f"validate must be True or False, got {self.validate!r}")

    def resolved(self, **defaults) -> TrainConfig:
        """This config with its None fields among ``defaults`` set to their default."""
        return dataclasses.replace(self, **{
            name: value for name, value in defaults.items() if getattr(self, name) is None})


@dataclass(frozen=True)
class Splits:
    """The datasets of one run, batched ``tf.data`` datasets of ((inputs, token_ids),
    labels): ``train``, ``validation`` (None when the run does not validate) and ``test``;
    ``sizes``: how many examples each holds, ``{"train": n, "validation": n, "test": n}``
    (0 for a missing validation split). Introduced in notebook 04."""

    train: object
    validation: object | None
    test: object
    sizes: dict

    def with_options(self, options) -> Splits:
        """The same splits with ``tf.data.Options`` applied to each dataset (sharding)."""
        return dataclasses.replace(self, **{
            name: getattr(self, name).with_options(options)
            for name in ("train", "validation", "test") if getattr(self, name) is not None})


def fit_logged(model, data, config: TrainConfig, *, name: str,
               log: Callable[[str], None] | None, targets=None, callbacks: list | None = None,
               extras: Callable[[], dict] | None = None, fit: Callable | None = None) -> dict:
    """Fit the compiled ``model`` for ``config.epochs`` epochs (``config`` resolved), timed,
    with one ``log`` line per epoch: ``[name] epoch 3/10  loss 0.1234  ...`` (every metric
    of the epoch, then ``extras()``, e.g. a learned temperature). Seeding stays with the
    trainer, before it builds its data and model.

    ``data`` is a batched ``tf.data.Dataset`` of (inputs, targets), which shuffles itself
    (``fit`` does not); or, with ``targets``, in-memory inputs that ``model.fit`` shuffles
    each epoch and cuts into batches of ``config.batch_size``. ``callbacks`` run after the
    epoch log. ``fit`` replaces ``model.fit``: called as ``fit(model, data, epochs=...,
    callbacks=...)``, it returns a dict with ``history`` (as ``train.callbacks.fit``).

    Returns ``history`` (a list of floats per metric), ``epochs_run`` (epochs this call
    ran: the length of the history), ``train_seconds`` (the fit alone) and any other key
    ``fit`` returned.
    Introduced in notebook 07."""
    import keras  # noqa: PLC0415

    log = log or (lambda message: None)

    def log_epoch(epoch, logs):
        values = {**logs, **(extras() if extras is not None else {})}
        line = "  ".join(f"{metric} {float(value):.4f}" for metric, value in values.items())
        log(f"[{name}] epoch {epoch + 1}/{config.epochs}  {line}")

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=log_epoch), *(callbacks or [])]
    start = time.perf_counter()
    if fit is not None:
        fitted = dict(fit(model, data, epochs=config.epochs, callbacks=callbacks))
    elif targets is None:
        history = model.fit(data, epochs=config.epochs, callbacks=callbacks, shuffle=False,
                            verbose=0)
        fitted = {"history": history.history}
    else:
        history = model.fit(data, targets, batch_size=config.batch_size, epochs=config.epochs,
                            callbacks=callbacks, shuffle=True, verbose=0)
        fitted = {"history": history.history}
    train_seconds = time.perf_counter() - start
    history = {metric: [float(v) for v in values] for metric, values in fitted["history"].items()}
    return {**fitted, "history": history, "epochs_run": len(next(iter(history.values()), [])),
            "train_seconds": train_seconds}


def fit_summary(model, fitted: dict, config: TrainConfig) -> dict:
    """The result keys that the trainers fitting with ``fit_logged`` (``fitted``, its
    return) under ``config`` report alike: ``params`` (of ``model``), ``train_seconds``,
    ``epochs_run``, ``seed``, ``batch_size``, ``learning_rate`` and ``history``.
    ``fit_and_evaluate`` and ``train.clip.train_clip`` build their results on it.
    Introduced in notebook 04."""
    return {"params": int(model.count_params()), "train_seconds": fitted["train_seconds"],
            "epochs_run": fitted["epochs_run"], "seed": config.seed,
            "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "history": fitted["history"]}


def warmup_cosine(model, config: TrainConfig, examples: int) -> None:
    """Set the compiled ``model``'s learning rate to a schedule by optimizer step: a linear
    warm-up from 0 to ``config.learning_rate`` over the first epoch (ceil(``examples`` /
    ``config.batch_size``) steps), then a cosine decay to 2 % of it at the last epoch's
    end. CLIP's and CLAP's schedule. Introduced in notebook 07."""
    import keras  # noqa: PLC0415

    steps = math.ceil(examples / config.batch_size)
    model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, (config.epochs - 1) * steps),
        warmup_target=config.learning_rate, warmup_steps=steps, alpha=0.02)


_ANSWER_METRICS = {"answer_accuracy": "accuracy", "val_answer_accuracy": "val_accuracy"}


def fit_and_evaluate(model, splits: Splits, config: TrainConfig, *, test_labels, test_kinds,
                     name: str, log: Callable[[str], None], run_dir=None, resume: bool = False,
                     callbacks: list | None = None, strategy: str = "default",
                     replicas: int = 1, trainer=None) -> dict:
    """Fit the compiled ``model`` on ``splits`` under ``config`` (resolved: no None epochs,
    batch size or learning rate), then evaluate it on the test split.

    ``mmcourse.train.callbacks.fit`` does the fitting: early stopping on the validation
    loss (the training loss without a validation split), ``config.schedule``, and with
    ``run_dir`` the best checkpoint, the backup (``resume`` continues from it), progress and
    ``model.keras`` at the end. ``log`` gets one line per epoch and the test accuracy, each
    starting ``[name]``; ``callbacks`` run after the epoch log. ``test_labels`` and
    ``test_kinds`` (one per test example) give ``accuracy_by_type``. ``trainer`` (notebook
    06), a model sharing ``model``'s layers, is fitted in its place, on ``splits.train``
    shaped for it; its ``answer_accuracy`` is reported as ``accuracy``.

    Returns the keys of ``RESULT_KEYS``: test_accuracy, test_loss, accuracy_by_type,
    params, train_seconds (``fit`` alone), seconds_per_epoch, epochs_run, seed,
    batch_size, learning_rate, train_examples, test_examples, history (per-epoch metrics),
    strategy, replicas, initial_epoch, stopped_early and weights_sha256 (fingerprint of
    the final weights). Introduced in notebook 04."""
    from mmcourse.stats import accuracy_by_type  # noqa: PLC0415
    from mmcourse.train import callbacks as course_callbacks  # noqa: PLC0415
    from mmcourse.train import distribute  # noqa: PLC0415

    fitted = fit_logged(
        trainer or model, splits.train, config, name=name, log=log, callbacks=callbacks,
        fit=functools.partial(
            course_callbacks.fit, validation_data=splits.validation, run_dir=run_dir,
            resume=resume, patience=config.patience,
            monitor="val_loss" if splits.validation is not None else "loss",
            schedule=config.schedule, progress=True))
    if trainer is not None:
        fitted["history"] = {_ANSWER_METRICS.get(metric, metric): values
                             for metric, values in fitted["history"].items()}
        # the model's own optimizer never stepped: build it, so its file loads as it saves
        model.optimizer.build(model.trainable_variables)
    train_seconds = fitted["train_seconds"]
    test_loss, test_accuracy = model.evaluate(splits.test, verbose=0)
    by_type = accuracy_by_type(model.predict(splits.test, verbose=0), test_labels, test_kinds)
    epochs_run = fitted["epochs_run"]
    if run_dir is not None:
        model.save(Path(run_dir) / "model.keras")
    log(f"[{name}] test accuracy {test_accuracy:.4f} after {epochs_run} epochs in "
        f"{train_seconds:.1f} s")
    result = {
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "accuracy_by_type": by_type, **fit_summary(model, fitted, config),
        "seconds_per_epoch": train_seconds / max(epochs_run, 1),
        "train_examples": splits.sizes["train"], "test_examples": splits.sizes["test"],
        "strategy": strategy, "replicas": replicas, "initial_epoch": fitted["initial_epoch"],
        "stopped_early": fitted["stopped_early"],
        "weights_sha256": distribute.weights_fingerprint(model),
    }
    return {key: result[key] for key in RESULT_KEYS}
