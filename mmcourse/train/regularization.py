"""Overfitting and its remedies, each measured (introduced in notebook 05).

- ``regularize(model, l2=..., dropout=...)``: the same fusion model with an L2 penalty
  on every kernel and/or ``Dropout`` before and after its hidden layer, recompiled.
- ``generalization(model, train_data, val_data)``: train and validation accuracy of the
  model as it is (no dropout, no augmentation), and their gap.
- ``REMEDIES`` and ``compare_remedies(...)``: train the baseline, each remedy on its own
  and all of them combined on the same small subset, and return their histories and a
  summary table (scored on a held-out test split when one is given).

Keras is imported inside the functions, so importing this module is light.
"""

from __future__ import annotations

import numpy as np

REMEDIES = ("baseline", "augmentation", "l2", "dropout", "early stopping", "combined")


def regularize(model, l2: float = 0.0, dropout: float = 0.0, learning_rate: float | None = None):
    """A new compiled model built from ``model``'s layers (shared, not copied):
    ``keras.regularizers.L2(l2)`` on every ``kernel`` and ``embeddings`` variable when
    ``l2 > 0``, and ``Dropout(dropout)`` on the input and the output of the layer named
    ``hidden`` (the head of ``mmcourse.matcher.model.build_model``) when ``dropout > 0``.

    Use it on a freshly built model. The loss, metrics and optimizer class come from
    ``model``'s compile; ``learning_rate`` overrides the rate. Introduced in notebook 05.
    """
    import keras  # noqa: PLC0415

    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise ValueError("model must be compiled (build it with mmcourse.matcher.model.build_model)")
    if l2 > 0:
        for variable in model.trainable_variables:
            if variable.name in ("kernel", "embeddings"):
                variable.regularizer = keras.regularizers.L2(l2)
    outputs = model.outputs[0]
    if dropout > 0:
        try:
            hidden = model.get_layer("hidden")
        except ValueError:
            raise ValueError(f"dropout needs a layer named 'hidden'; {model.name} has "
                             f"{[layer.name for layer in model.layers]}") from None
        output_layer = model.layers[-1]
        features = keras.layers.Dropout(dropout, name="dropout_in")(hidden.input)
        features = keras.layers.Dropout(dropout, name="dropout_out")(hidden(features))
        outputs = output_layer(features)
    new_model = keras.Model(model.inputs, outputs, name=f"{model.name}_regularized")
    optimizer_config = model.optimizer.get_config()
    if learning_rate is not None:
        optimizer_config["learning_rate"] = learning_rate
    new_model.compile(optimizer=type(model.optimizer).from_config(optimizer_config),
                      loss=model.loss, metrics=["accuracy"])
    return new_model


def data_loss_accuracy(model, data) -> tuple[float, float]:
    """(mean data loss, accuracy) of ``model`` on ``data`` in inference mode (no dropout),
    weighted by batch size. The loss is the compiled loss alone, without the L2 penalties
    that ``model.evaluate`` would add. Introduced in notebook 05."""
    import keras  # noqa: PLC0415

    loss = keras.losses.get(model.loss)
    losses, correct, counts = [], 0.0, []
    for inputs, labels in data:
        predictions = model(inputs, training=False)
        if len(predictions.shape) == len(labels.shape) + 1 and predictions.shape[-1] == 1:
            predictions = predictions[:, 0]  # a sigmoid unit against 0/1 labels
        losses.append(float(keras.ops.mean(loss(labels, predictions))))
        hits = keras.ops.cast(predictions > 0.5, "float32") == keras.ops.cast(labels, "float32")
        correct += float(keras.ops.sum(keras.ops.cast(hits, "float32")))
        counts.append(len(labels))
    return float(np.average(losses, weights=counts)), correct / sum(counts)


def generalization(model, train_data, val_data, test_data=None) -> dict:
    """``{"train_accuracy", "val_accuracy", "gap", "val_loss"}`` of ``model`` evaluated
    (inference mode: no dropout) on un-augmented ``train_data`` and on ``val_data``; the
    loss is the data loss (without L2 penalties). With ``test_data`` also
    ``"test_accuracy"`` and ``"test_loss"``. Introduced in notebook 05."""
    train_accuracy = float(model.evaluate(train_data, verbose=0, return_dict=True)["accuracy"])
    val_accuracy = float(model.evaluate(val_data, verbose=0, return_dict=True)["accuracy"])
    val_loss = data_loss_accuracy(model, val_data)[0]
    row = {"train_accuracy": train_accuracy, "val_accuracy": val_accuracy,
           "gap": train_accuracy - val_accuracy, "val_loss": val_loss}
    if test_data is not None:
        row["test_loss"], row["test_accuracy"] = data_loss_accuracy(model, test_data)
    return row


def compare_remedies(build, make_train_data, val_data, epochs: int, remedies=REMEDIES,
                     l2: float = 1e-4, dropout: float = 0.3, patience: int = 5,
                     seed: int = 0, keep_models: bool = False,
                     test_data=None) -> tuple[dict, list[dict]]:
    """Train a fresh ``build()`` model once per remedy: ``baseline`` (none),
    ``augmentation`` (fit on ``make_train_data(augment=True)``), ``l2``, ``dropout``,
    ``early stopping`` (``EarlyStopping(patience, restore_best_weights=True)`` on
    ``val_loss``, within the same budget of ``epochs``), and ``combined`` (all four at
    once). Every run starts from the same seed and a fresh
    ``make_train_data(augment=...)`` dataset, so all runs see the same batches.

    Validation data choose (early stopping's epoch); ``test_data``, a split no run has
    seen, scores. Returns ``(histories, rows)``: the ``History.history`` dict per remedy,
    and per remedy a row ``{"remedy", "epochs", "best_epoch", "train_accuracy",
    "val_accuracy", "gap", "val_loss"}`` (``best_epoch``: the epoch whose weights the model
    keeps, counted from 1) (plus ``"test_accuracy"``, ``"test_loss"`` with ``test_data``) measured
    by ``generalization`` on the model that training returns (and, with ``keep_models``,
    that model under ``"model"``). Introduced in notebook 05.
    """
    import keras  # noqa: PLC0415

    unknown = [name for name in remedies if name not in REMEDIES]
    if unknown:
        raise ValueError(f"unknown remedies {unknown}; valid names: {', '.join(REMEDIES)}")
    histories, rows = {}, []
    for name in remedies:
        keras.utils.set_random_seed(seed)
        model = build()
        combined = name == "combined"
        if name in ("l2", "dropout") or combined:
            model = regularize(model, l2=l2 if name in ("l2", "combined") else 0.0,
                               dropout=dropout if name in ("dropout", "combined") else 0.0)
        callbacks = []
        if name == "early stopping" or combined:
            callbacks.append(keras.callbacks.EarlyStopping(patience=patience,
                                                           restore_best_weights=True))
        train_data = make_train_data(augment=name == "augmentation" or combined)
        # The dataset shuffles itself (seeded): fit's own shuffle does not apply to it.
        history = model.fit(train_data, validation_data=val_data, epochs=epochs,
                            callbacks=callbacks, shuffle=False, verbose=0)
        histories[name] = history.history
        epochs_run = len(history.history["loss"])
        row = {"remedy": name, "epochs": epochs_run,
               "best_epoch": callbacks[0].best_epoch + 1 if callbacks else epochs_run}
        row.update(generalization(model, make_train_data(augment=False), val_data, test_data))
        if keep_models:
            row["model"] = model
        rows.append(row)
    return histories, rows


def format_table(rows, columns=("remedy", "epochs", "val_accuracy", "gap")) -> str:
    """The rows of ``compare_remedies`` as a fixed-width text table, floats to 3
    decimals (stable to print in a notebook). Introduced in notebook 05."""
    cells = [[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
             for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)
