"""Fit with callbacks: early stopping, checkpoints, backup and resume, learning-rate
schedules (introduced in notebook 05).

- ``make_callbacks(run_dir, ...)``: the course's callback set, each one optional:
  ``EarlyStopping(restore_best_weights=True)``, ``ModelCheckpoint`` to ``best.keras``,
  ``BackupAndRestore`` in ``backup/`` (so a killed run resumes where it stopped), a
  ``LearningRateScheduler``, and ``EpochLog`` (one line per finished epoch).
- ``cosine_schedule`` / ``step_schedule``: epoch -> learning rate functions.
- ``fit(model, train_data, validation_data, ...)``: ``model.fit`` with these callbacks,
  returning the history and how many epochs ran, and from which epoch it resumed.

Limits of ``BackupAndRestore`` (Keras 3): it restores the weights, the optimizer state
and the epoch counter, but not the state of the other callbacks (early stopping's
patience and best weights, the best checkpoint's score start again at the resumed epoch)
nor the position inside an epoch: the interrupted epoch runs again from its start.

Keras is imported inside the functions, so importing this module is light.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path


def cosine_schedule(initial_learning_rate: float, epochs: int, warmup_epochs: int = 0,
                    final_fraction: float = 0.0):
    """A function epoch -> learning rate: linear warm-up over ``warmup_epochs``, then a
    cosine decay from ``initial_learning_rate`` to ``final_fraction`` of it at the last
    epoch. For ``keras.callbacks.LearningRateScheduler``. Introduced in notebook 05.
    """
    if not initial_learning_rate > 0:
        raise ValueError(f"initial_learning_rate must be > 0, got {initial_learning_rate!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}), got {warmup_epochs!r}")
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction!r}")

    def schedule(epoch: int, learning_rate: float | None = None) -> float:
        if epoch < warmup_epochs:
            return float(initial_learning_rate * (epoch + 1) / (warmup_epochs + 1))
        span = max(epochs - 1 - warmup_epochs, 1)
        progress = min((epoch - warmup_epochs) / span, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return float(initial_learning_rate * (final_fraction + (1 - final_fraction) * cosine))

    return schedule


def step_schedule(initial_learning_rate: float, drop_every: int, factor: float = 0.5):
    """A function epoch -> learning rate that multiplies the rate by ``factor`` every
    ``drop_every`` epochs. Introduced in notebook 05."""
    if not initial_learning_rate > 0:
        raise ValueError(f"initial_learning_rate must be > 0, got {initial_learning_rate!r}")
    if isinstance(drop_every, bool) or not isinstance(drop_every, int) or drop_every < 1:
        raise ValueError(f"drop_every must be a positive int, got {drop_every!r}")
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")

    def schedule(epoch: int, learning_rate: float | None = None) -> float:
        return float(initial_learning_rate * factor ** (epoch // drop_every))

    return schedule


def _epoch_log_class():
    import keras  # noqa: PLC0415

    class EpochLog(keras.callbacks.Callback):
        """After each epoch, writes ``epoch N/M done`` and the epoch's metrics to ``stream``
        if given, and the same as JSON to ``progress_path`` if given (for scripts that
        watch a run)."""

        def __init__(self, epochs: int, progress_path=None, stream=None):
            super().__init__()
            self.epochs = epochs
            self.progress_path = Path(progress_path) if progress_path else None
            self.stream = stream

        def on_epoch_end(self, epoch, logs=None):
            logs = {key: round(float(value), 4) for key, value in (logs or {}).items()}
            if self.stream is not None:
                print(f"epoch {epoch + 1}/{self.epochs} done {json.dumps(logs)}",
                      file=self.stream, flush=True)
            if self.progress_path is not None:
                self.progress_path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.progress_path.with_suffix(".tmp")
                temporary.write_text(json.dumps({"epochs_done": epoch + 1, "logs": logs}))
                temporary.replace(self.progress_path)

    return EpochLog


def make_callbacks(run_dir=None, *, epochs: int | None = None, patience: int | None = None,
                   monitor: str = "val_loss", checkpoint: bool = True, backup: bool = True,
                   schedule=None, log: bool = False, progress: bool = False) -> list:
    """The course's callbacks for one run; files go under ``run_dir``.

    - ``patience``: ``EarlyStopping(monitor, patience, restore_best_weights=True)``;
    - ``checkpoint``: ``ModelCheckpoint(run_dir/"best.keras", monitor, save_best_only=True)``;
    - ``backup``: ``BackupAndRestore(run_dir/"backup")``, deleted when fit completes;
    - ``schedule``: ``LearningRateScheduler(schedule)`` (see ``cosine_schedule``);
    - ``log``: ``EpochLog`` lines to stderr; ``progress``: the same as JSON in
      ``run_dir/progress.json`` (scripts and tests watch it).

    ``BackupAndRestore`` comes before ``EpochLog``, so when a line ``epoch N/M done`` is
    printed (or ``progress.json`` says N epochs are done) the backup of epoch N is on
    disk. The backup keeps two generations (``double_checkpoint``), so a kill while it is
    being written still leaves one that loads. Introduced in notebook 05.
    """
    import keras  # noqa: PLC0415

    if (checkpoint or backup or progress) and run_dir is None:
        raise ValueError("run_dir is required for checkpoint, backup or progress callbacks")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 0):
        raise ValueError(f"patience must be a non-negative int or None, got {patience!r}")
    run_dir = Path(run_dir) if run_dir is not None else None
    callbacks = []
    if schedule is not None:
        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                       restore_best_weights=True))
    if checkpoint:
        run_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"),
                                                         monitor=monitor, save_best_only=True))
    if backup:
        callbacks.append(keras.callbacks.BackupAndRestore(str(run_dir / "backup"),
                                                          double_checkpoint=True))
    if log or progress:
        callbacks.append(_epoch_log_class()(
            epochs or 0, run_dir / "progress.json" if progress else None,
            stream=sys.stderr if log else None))
    return callbacks


def saved_epoch(run_dir) -> int:
    """The number of finished epochs in ``run_dir``'s backup (0 when there is none)."""
    metadata = Path(run_dir) / "backup" / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def fit(model, train_data, validation_data=None, *, epochs: int, run_dir=None,
        resume: bool = False, patience: int | None = None, monitor: str = "val_loss",
        schedule=None, checkpoint: bool = True, log: bool = False, progress: bool = False,
        callbacks: list | None = None, verbose: int = 0) -> dict:
    """``model.fit`` with ``make_callbacks``; returns a dict with ``history`` (lists per
    metric, for the epochs this call ran), ``initial_epoch`` (epochs restored from the
    backup), ``epochs_run`` (epochs this call ran) and ``stopped_early``.

    Without ``resume`` a backup left in ``run_dir`` by an interrupted run is deleted
    first, so the run starts from scratch; with ``resume`` training continues after the
    last epoch that finished. ``run_dir=None`` fits without files (no checkpoint, no
    backup), as the notebook does for small experiments. ``callbacks`` are extra
    callbacks that run before the course's. Introduced in notebook 05.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if run_dir is None and resume:
        raise ValueError("resume=True needs the run_dir that holds the backup")
    if validation_data is None and (patience is not None or checkpoint) and \
            monitor.startswith("val_"):
        raise ValueError(f"monitor={monitor!r} needs validation_data")
    initial_epoch = 0
    if run_dir is not None:
        if resume:
            initial_epoch = saved_epoch(run_dir)
        else:
            shutil.rmtree(Path(run_dir) / "backup", ignore_errors=True)
    callbacks = [*(callbacks or []), *make_callbacks(
        run_dir, epochs=epochs, patience=patience, monitor=monitor,
        checkpoint=checkpoint and run_dir is not None, backup=run_dir is not None,
        schedule=schedule, log=log, progress=progress and run_dir is not None)]
    if initial_epoch:
        print(f"resuming from epoch {initial_epoch}/{epochs} (backup in {run_dir}/backup)",
              file=sys.stderr, flush=True)
    history = model.fit(train_data, validation_data=validation_data, epochs=epochs,
                        callbacks=callbacks, shuffle=False, verbose=verbose)  # data shuffles
    model._initial_epoch = None  # BackupAndRestore leaves it set; a later fit must not reuse it
    stopper = next((c for c in callbacks if type(c).__name__ == "EarlyStopping"), None)
    epochs_run = len(next(iter(history.history.values()), []))
    return {
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "initial_epoch": initial_epoch,
        "epochs_run": epochs_run,
        "stopped_early": bool(stopper is not None and stopper.stopped_epoch > 0),
    }
