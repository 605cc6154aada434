"""The raw-input model file of notebook 09: a trained matcher behind its vocabulary, saved as
one ``.keras`` file that takes images and raw strings, loaded back and checked, and its
predictions (notebooks 09 and 10).

- ``export_model``: the trained model behind a ``TextVectorization`` layer (the vocabulary
  and ``text.standardize`` inside), so the saved file takes raw strings:
  ``{"image": float32 (B, 64, 64, 3) in [0, 1], "text": strings (B,)}`` -> P(match) (B, 1).
- ``load_raw_model(path)``, ``check_raw_model`` and ``predict(model, images, texts)``:
  probabilities from image files or arrays and raw texts, every input checked
  (``check_pairs``, ``stack_images``).

In a fresh Python, ``register_keras_objects()`` (``load_raw_model`` calls it) makes the
standardisation and the course's layers known to Keras; then
``keras.saving.load_model(path, safe_mode=True)`` alone loads the model: no vocabulary
file, no custom_objects, no code of yours.
Keras and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcourse.data import folders, text
from mmcourse.data import images as image_contract

#: The side of the square images the matcher reads (the image contract resizes to it).
IMAGE_SIZE = 64


def export_model(model, vocabulary, sequence_length: int):
    """A model that takes raw inputs: ``{"image": float32 (B, 64, 64, 3) in [0, 1],
    "text": strings (B,)}``. It runs the ``TextVectorization`` layer (vocabulary and
    standardisation inside) and then ``model`` (image, token ids): see
    ``mmcourse.matcher.io.raw_input_model``, which also wraps qa models. Introduced in
    notebook 09."""
    from mmcourse.matcher import io as matcher_io

    return matcher_io.raw_input_model(model, vocabulary, sequence_length)


def register_keras_objects() -> None:
    """Make Keras know the course's registered pieces (``text.standardize``, the fusion
    and relational layers) before ``keras.saving.load_model``. Introduced in notebook 09."""
    import mmcourse.blocks  # noqa: F401
    import mmcourse.matcher.fusion  # noqa: F401  (registers the custom layers)

    text.register_keras_objects()


def load_raw_model(path, tasks=("match",)):
    """Load a raw-input model saved by ``train_folder(save=...)`` (or by ``train --save``, a
    qa model too when ``tasks`` holds "qa"; any model for ``tasks=None``) with
    ``safe_mode=True``; a clear ``ValueError`` for a missing or corrupt file or a model of
    another kind. Introduced in notebook 09."""
    from mmcourse.matcher import io as matcher_io

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    register_keras_objects()
    try:
        model = matcher_io.load_matcher(path)
    except Exception as error:  # noqa: BLE001  (zip, h5py, JSON and Keras errors alike)
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(f"cannot load model {path}: it is not a .keras file that Keras can "
                         f"read ({type(error).__name__}: {reason}); save one with "
                         f"`python -m mmcourse train --data-dir FOLDER --save {path.name}`"
                         ) from None
    if tasks is not None:
        check_raw_model(model, path, tasks)
    return model


def check_raw_model(model, name="model", tasks=("match",)) -> str:
    """``ValueError`` unless ``model`` takes {"image", "text"} raw inputs and is a model of
    one of ``tasks`` (what ``export_model`` and ``mmcourse.matcher.io.raw_input_model``
    make: one match probability, or a qa model's answer and probabilities); returns its task.
    Introduced in notebook 09; qa in notebook 10."""
    from mmcourse.matcher import io as matcher_io

    task = matcher_io.raw_model_task(model)
    if task not in tasks:
        inputs = getattr(model, "inputs", [])
        outputs = getattr(model, "outputs", [])
        names = [getattr(t, "name", "?").split(":")[0] for t in inputs]
        shapes = [tuple(o.shape) for o in outputs]
        found = f"a raw-input {task} model" if task else \
            f"a model with inputs {names} and outputs {shapes}"
        hint = ("it takes token ids, so it carries no vocabulary: save a model with `python -m "
                "mmcourse train ... --save model.keras`" if "token_ids" in names else
                "use a model saved by `python -m mmcourse train --data-dir FOLDER --save "
                "model.keras`")
        raise ValueError(f"{name} is not a raw-input {' or '.join(tasks)} model (inputs image "
                         f"and text): it is {found}; {hint}")
    return task


def stack_images(images) -> np.ndarray:
    """Image files or RGB uint8 arrays as one float32 batch (N, 64, 64, 3) in [0, 1],
    resized by the image contract; a clear error naming the bad image. Notebook 09."""
    batch = []
    for index, image in enumerate(images):
        if isinstance(image, (str, Path)):
            image = folders.read_image(image, IMAGE_SIZE)
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images[{index}] must be an image file or an RGB uint8 array "
                             f"(H, W, 3), got {image.dtype} {image.shape}")
        image = image_contract.area_resize(image, IMAGE_SIZE)  # the image contract
        batch.append(image)
    return np.stack(batch).astype(np.float32) / 255.0


def check_pairs(images, texts) -> tuple[list, list[str]]:
    """``images`` and ``texts`` as lists of the same, non-zero length, every text a str with
    at least one word after standardisation; a clear error otherwise. Introduced in
    notebook 09."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it as [text]")
    texts, images = list(texts), list(images)
    if len(texts) != len(images):
        raise ValueError(f"images and texts must have the same length, got {len(images)} "
                         f"and {len(texts)}")
    if not texts:
        raise ValueError("images and texts are empty: give at least one pair")
    for index, caption in enumerate(texts):
        if not isinstance(caption, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(caption).__name__}")
        if not text.split_words(caption):
            raise ValueError(f"texts[{index}] is empty (no word after standardisation): "
                             f"{caption!r}")
    return images, texts


def predict(model, images, texts) -> np.ndarray:
    """P(text matches image) float (N,) for image files or RGB uint8 arrays and raw texts,
    with a raw-input model (``export_model``, or a path that ``load_raw_model`` reads).
    Introduced in notebook 09."""
    if isinstance(model, (str, Path)):
        model = load_raw_model(model)
    check_raw_model(model)
    images, texts = check_pairs(images, texts)
    image_batch, text_batch = stack_images(images), np.array(texts, dtype=object)
    chunks = [np.asarray(model({"image": image_batch[start:start + 256],
                                "text": text_batch[start:start + 256]}, training=False))
              for start in range(0, len(texts), 256)]  # eager calls: no retracing per model
    return np.concatenate(chunks).reshape(-1)
