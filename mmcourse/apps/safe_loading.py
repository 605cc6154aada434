"""Safe loading (notebook 10): what ``safe_mode`` protects against. ``lambda_model`` writes
a ``.keras`` file whose ``Lambda`` layer runs code when Keras rebuilds it; ``load_keras``
loads a file with the course's objects registered, ``safe_mode=True`` by default.
"""

from __future__ import annotations

from pathlib import Path

from mmcourse.apps import raw_model


def lambda_model(path, marker) -> Path:
    """Save a small ``.keras`` model with a ``Lambda`` layer whose code, when Keras rebuilds
    the model, writes the file ``marker``: a harmless stand-in for what a malicious file
    could run. Introduced in notebook 10."""
    import keras

    inputs = keras.Input(shape=(2,), name="x")
    outputs = keras.layers.Lambda(
        lambda x, marker: (__import__("pathlib").Path(marker).write_text("code ran"), x)[1],
        arguments={"marker": str(marker)}, name="payload")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense")(outputs))
    model.save(path)
    return Path(path)


def load_keras(path, safe_mode: bool = True, compile: bool = True):  # noqa: A002  (Keras' name)
    """``keras.saving.load_model(path, safe_mode=..., compile=...)`` after registering the
    course's objects. Under ``safe_mode=True`` a ``Lambda`` layer's Python code is refused: a
    ``ValueError`` that says so. Introduced in notebook 10."""
    import keras

    raw_model.register_keras_objects()
    return keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
