"""The matcher's inputs and files (notebook 04; raw inputs in notebooks 09 and 10).

- ``check_inputs``: a clear ``ValueError`` for batches of the wrong shape, and
  ``predict_batch``, a prediction on a checked batch.
- ``load_matcher``: a saved ``.keras`` matcher, loaded with ``safe_mode=True``.
- ``raw_input_model``: the matcher behind its text vectorizer, so that one ``.keras`` file
  takes images and raw texts (what ``predict``, ``export`` and ``serve`` read), and
  ``core_task`` / ``raw_model_task``: which task a core or a raw-input model does.

Keras and TensorFlow are imported inside the functions, so ``import mmcourse.matcher.io``
stays light.
"""

from __future__ import annotations


def _find_embedding(model):
    """The first Embedding layer in ``model`` or its nested models, or None."""
    for layer in model.layers:
        if type(layer).__name__ == "Embedding":
            return layer
        if hasattr(layer, "layers"):
            found = _find_embedding(layer)
            if found is not None:
                return found
    return None


def _shape_text(shape) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def _shape_matches(shape, expected) -> bool:
    """Whether an array shape (with batch axis) fits ``expected`` (without; None = any)."""
    return len(shape) == len(expected) + 1 and all(
        want is None or got == want for got, want in zip(shape[1:], expected, strict=True))


def check_inputs(model_or_shapes, image_batch, token_ids):
    """Validate a batch for a two-input model; return it as (float32, int32) NumPy arrays.

    ``model_or_shapes`` is a model built by ``build_model``/``build_article_model``, or a
    pair of expected shapes without the batch axis, e.g. ``((64, 64, 3), (12,))``
    (``None`` for any length). Raises a ``ValueError`` that names the argument and the
    expected shape: images must be (batch, 64, 64, 3) float in [0, 1], token ids
    (batch, L) integers in [0, vocabulary_size), with the same batch size.
    Introduced in notebook 04.
    """
    import numpy as np  # noqa: PLC0415

    vocabulary_size = None
    if hasattr(model_or_shapes, "inputs"):
        inputs = model_or_shapes.inputs
        if len(inputs) != 2:
            raise ValueError(f"expected a model with two inputs (image, token_ids), got "
                             f"{len(inputs)}")
        image_shape, token_shape = (tuple(t.shape[1:]) for t in inputs)
        embedding = _find_embedding(model_or_shapes)
        if embedding is not None:
            vocabulary_size = embedding.input_dim
    else:
        try:
            image_shape, token_shape = (tuple(s) for s in model_or_shapes)
        except (TypeError, ValueError):
            raise TypeError("model_or_shapes must be a Keras model or a pair of shapes "
                            f"(image_shape, token_shape), got {model_or_shapes!r}") from None
    image_expected = f"(batch, {', '.join(str(d) for d in image_shape)})"
    token_expected = _shape_text((None, *token_shape)).replace("(batch, batch)",
                                                               "(batch, length)")

    if hasattr(image_batch, "numpy") and not isinstance(image_batch, np.ndarray):
        image_batch = image_batch.numpy()
    if hasattr(token_ids, "numpy") and not isinstance(token_ids, np.ndarray):
        token_ids = token_ids.numpy()
    image_batch = np.asarray(image_batch)
    token_ids = np.asarray(token_ids)
    if not _shape_matches(image_batch.shape, image_shape):
        hint = " (one image? use image[None] to add the batch axis)" if (
            image_batch.shape == tuple(image_shape)) else ""
        raise ValueError(f"image_batch must have shape {image_expected}, got "
                         f"{image_batch.shape}{hint}")
    if image_batch.dtype.kind != "f":
        raise ValueError(f"image_batch must be float in [0, 1] with shape {image_expected}, "
                         f"got dtype {image_batch.dtype}; convert uint8 images with "
                         f"image_batch.astype('float32') / 255")
    if not _shape_matches(token_ids.shape, token_shape):
        raise ValueError(f"token_ids must have shape {token_expected} (integer ids, "
                         f"0 = padding), got {token_ids.shape}")
    if token_ids.dtype.kind not in "iu":
        raise ValueError(f"token_ids must hold integer ids with shape {token_expected}, "
                         f"got dtype {token_ids.dtype}; vectorize texts with "
                         f"mmcourse.data.text.vectorize")
    if image_batch.shape[0] != token_ids.shape[0]:
        raise ValueError(f"image_batch and token_ids must have the same batch size, got "
                         f"{image_batch.shape[0]} images and {token_ids.shape[0]} token rows")
    if token_ids.size and (token_ids.min() < 0 or (
            vocabulary_size is not None and token_ids.max() >= vocabulary_size)):
        raise ValueError(f"token_ids must be in [0, {vocabulary_size}) (the vocabulary "
                         f"size), got values from {token_ids.min()} to {token_ids.max()}")
    return image_batch.astype("float32", copy=False), token_ids.astype("int32", copy=False)


def predict_batch(model, image_batch, token_ids):
    """``model.predict`` on a checked batch (see ``check_inputs``): a NumPy array of
    match probabilities (B, 1) or answer probabilities (B, num_answers).
    Introduced in notebook 04."""
    image_batch, token_ids = check_inputs(model, image_batch, token_ids)
    return model.predict([image_batch, token_ids], verbose=0)


def load_matcher(path):
    """Load a ``.keras`` model saved from ``build_model``, with ``safe_mode=True``
    (registers the fusion layers first). Introduced in notebook 04."""
    import keras  # noqa: PLC0415

    import mmcourse.blocks  # noqa: F401, PLC0415
    import mmcourse.matcher.fusion  # noqa: F401, PLC0415  (registers the custom layers)
    import mmcourse.matcher.object_relations  # noqa: F401, PLC0415

    return keras.saving.load_model(path, safe_mode=True)


def raw_input_model(model, vocabulary, sequence_length: int, answers=None):
    """``model`` (image, token ids) behind a ``TextVectorization`` layer named ``vectorizer``
    (the vocabulary and ``text.standardize`` inside), so that it takes raw inputs
    ``{"image": float32 (B, 64, 64, 3) in [0, 1], "text": strings (B,)}`` and one ``.keras``
    file holds everything a prediction needs. A match model gives P(match) (B, 1). A qa
    model needs ``answers``, its answer words (one per output unit, as ``vocab.json``'s
    ``answers``); it gives ``{"answer": the most probable answer (B,) string,
    "probabilities": (B, A)}``, the words held by a ``StringLookup`` layer named ``answers``.
    Introduced in notebook 09; qa in notebook 10."""
    import keras  # noqa: PLC0415

    from mmcourse.data import text  # noqa: PLC0415

    task = core_task(model)
    if model.inputs[0].name == "objects" or len(model.inputs[0].shape) != 4:
        raise ValueError(f"the {model.name} model takes object tokens (mmcourse.data.objects), not "
                         f"images: it cannot be saved with raw inputs, exported or served; "
                         f"keep it with --run-dir and feed it objects.split_features")
    units = int(model.outputs[0].shape[-1])
    if (task == "qa") != (answers is not None):
        raise ValueError(f"answers must be the qa model's {units} answer words, and None for a "
                         f"match model; got {'none' if answers is None else len(answers)} for "
                         f"a {task} model")
    if answers is not None and len(answers) != units:
        raise ValueError(f"the model has {units} answer units but answers holds "
                         f"{len(answers)} words: the vocab.json of the data it was trained on?")
    embedding = _find_embedding(model)
    if embedding is not None and embedding.input_dim != len(vocabulary):
        raise ValueError(f"the model's embedding has {embedding.input_dim} rows but the "
                         f"vocabulary holds {len(vocabulary)} tokens: the vocab.json of the data "
                         f"it was trained on?")
    image = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="image")
    raw_text = keras.Input(shape=(), dtype="string", name="text")
    vectorizer = text.make_vectorizer(vocabulary=vocabulary, sequence_length=sequence_length,
                                      name="vectorizer")
    output = model([image, vectorizer(raw_text)])
    if task == "qa":
        words = keras.layers.StringLookup(vocabulary=list(answers), invert=True,
                                          num_oov_indices=0, name="answers")
        output = {"answer": words(keras.ops.argmax(output, axis=-1)), "probabilities": output}
    return keras.Model({"image": image, "text": raw_text}, output,
                       name=f"{model.name}_raw_inputs")


def core_task(model) -> str:
    """``"match"`` or ``"qa"`` for a model of ``build_model`` (inputs image and token ids;
    one sigmoid unit, or one softmax unit per answer); a ``ValueError`` that describes any
    other model. Introduced in notebook 10."""
    inputs, outputs = getattr(model, "inputs", []), getattr(model, "outputs", [])
    if len(inputs) == 2 and len(outputs) == 1 and len(outputs[0].shape) == 2 and \
            inputs[1].dtype in ("int32", "int64") and outputs[0].shape[-1] is not None:
        return "match" if outputs[0].shape[-1] == 1 else "qa"
    raise ValueError(f"expected a model of build_model (inputs image and token ids, match or "
                     f"qa output), got inputs {[tuple(t.shape) for t in inputs]} and outputs "
                     f"{[tuple(t.shape) for t in outputs]}")


def raw_model_task(model) -> str | None:
    """``"match"`` or ``"qa"`` for a raw-input model (``raw_input_model``: inputs image and
    text), else None. Introduced in notebook 10."""
    inputs, output = getattr(model, "input", None), getattr(model, "output", None)
    if not isinstance(inputs, dict) or sorted(inputs) != ["image", "text"]:
        return None
    if isinstance(output, dict) and sorted(output) == ["answer", "probabilities"]:
        return "qa"
    if not isinstance(output, dict) and len(model.outputs) == 1 and \
            tuple(model.outputs[0].shape[1:]) == (1,):
        return "match"
    return None
