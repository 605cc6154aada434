"""The course's models: encoders, fusion models and the article's model (notebook 04).

Keras and TensorFlow are imported inside the functions, so ``import mmcourse.models``
stays light.

- ``build_image_encoder``: the course's small CNN (also shown in notebook 02).
- ``build_text_encoder``: ``Embedding(mask_zero=True)`` followed by an LSTM.
- ``build_model(task, fusion)``: image encoder + text encoder + a fusion method from
  ``mmcourse.fusion`` + a small head, compiled.
- ``build_article_model()``: the source article's model, with only its bugs fixed.
- ``check_inputs``: a clear ``ValueError`` for batches of the wrong shape.
- ``benchmark()``: the ``fusion`` benchmark (``python -m mmcourse bench fusion``).
"""

from __future__ import annotations

IMAGE_SHAPE = (64, 64, 3)


def build_image_encoder(filters=(16, 32, 32), kernel_size: int = 3, pooling: str = "avg",
                        output: str = "vector", image_shape=IMAGE_SHAPE,
                        name: str = "image_encoder"):
    """The course's small CNN: a functional ``keras.Model`` from an image batch
    (B, 64, 64, 3) float32 in [0, 1] to features.

    Each entry of ``filters`` adds a ``Conv2D(f, kernel_size, strides=2, padding="same",
    activation="relu")`` named ``conv1``, ``conv2``, ...; every one halves the height and
    width, so with the default three layers the 64x64 image becomes an 8x8 grid of
    32-dimensional region features (each region sees a 15x15 pixel receptive field).

    ``output``:
      - ``"vector"``: (B, filters[-1]), the grid pooled by ``pooling`` (``"avg"`` or
        ``"max"``, a ``GlobalAveragePooling2D``/``GlobalMaxPooling2D`` named ``pool``);
      - ``"grid"``: (B, H', W', filters[-1]), the region features (for attention, FiLM);
      - ``"both"``: the list ``[grid, vector]``.

    Parameters: sum over layers of (k*k*C_in + 1) * C_out; 14,336 with the defaults.
    Introduced in notebook 02 (feature maps); used in notebook 04.
    """
    import keras  # noqa: PLC0415

    if output not in ("vector", "grid", "both"):
        raise ValueError(f"output must be 'vector', 'grid' or 'both', got {output!r}")
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    filters = tuple(filters)
    if not filters or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"filters must be a non-empty sequence of positive ints, got {filters!r}")
    image_shape = tuple(image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape!r}")

    image = keras.Input(shape=image_shape, name="image")
    grid = image
    for index, count in enumerate(filters, start=1):
        grid = keras.layers.Conv2D(count, kernel_size, strides=2, padding="same",
                                   activation="relu", name=f"conv{index}")(grid)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    if output == "grid":
        return keras.Model(image, grid, name=name)
    vector = pool(name="pool")(grid)
    outputs = vector if output == "vector" else [grid, vector]
    return keras.Model(image, outputs, name=name)
