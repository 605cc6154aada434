"""Image augmentation with OpenCV, and augmentation that keeps image and text consistent
(introduced in notebook 01).

``data_augment`` is the source article's function (random rotation and scale), with its
randomness taken from a ``numpy.random.Generator``. The other transforms each take
``(image, rng, ...)``; ``augment_image`` composes them. Images are RGB uint8 (H, W, 3).

A geometric transform can make a caption false: mirror "a red circle left of a blue
square" and the red circle is now on the right. ``flip_pair`` and ``augment_pair`` flip
the image and swap the spatial words of its text (left/right, or above/below and
top/bottom) together, so the pair stays true.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

#: Words a horizontal / vertical flip turns into each other.
HORIZONTAL_SWAPS = {"left": "right", "right": "left"}
VERTICAL_SWAPS = {"above": "below", "below": "above", "top": "bottom", "bottom": "top"}


# --- argument checks ----------------------------------------------------------------------


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def _check_image(image, name: str = "image") -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (RGB 0..255), got {image.dtype}; "
                         f"convert with np.clip(x * 255, 0, 255).astype(np.uint8)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}; expected H, W >= 1")


def _check_batch(images, name: str = "images") -> None:
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (N, H, W, 3) uint8, "
                        f"got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W, 3), got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {images.shape}; expected N >= 1")
    _check_image(images[0], f"{name}[0]")


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


# --- the article's augmentation, then more --------------------------------------------------


def data_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The article's augmentation: rotate by an integer angle in [-30, 30) degrees and
    scale by a factor in [0.8, 1.2) about the centre; same size, black corners.
    Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    angle = int(rng.integers(-30, 30))  # np.random.randint(-30, 30) in the article
    scale = float(rng.uniform(0.8, 1.2))
    rows, cols = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), angle, scale)
    return cv2.warpAffine(image, matrix, (cols, rows))


def random_flip(image: np.ndarray, rng: np.random.Generator, horizontal: bool = True,
                p: float = 0.5) -> np.ndarray:
    """Mirror left-right (``horizontal``) or top-bottom with probability ``p``.
    Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    if rng.random() < p:
        return np.ascontiguousarray(image[:, ::-1] if horizontal else image[::-1])
    return image.copy()


def random_crop(image: np.ndarray, rng: np.random.Generator,
                min_fraction: float = 0.8) -> np.ndarray:
    """Cut a random square-ish window of at least ``min_fraction`` of each side and resize
    it back to the original size. Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    rows, cols = image.shape[:2]
    fraction = rng.uniform(min_fraction, 1.0)
    height, width = max(1, round(rows * fraction)), max(1, round(cols * fraction))
    top = int(rng.integers(0, rows - height + 1))
    left = int(rng.integers(0, cols - width + 1))
    window = image[top:top + height, left:left + width]
    return cv2.resize(window, (cols, rows), interpolation=cv2.INTER_LINEAR)


def random_brightness_contrast(image: np.ndarray, rng: np.random.Generator,
                               brightness: float = 0.2, contrast: float = 0.2) -> np.ndarray:
    """Scale contrast about the image mean by a factor in [1-contrast, 1+contrast] and shift
    brightness by up to ``brightness`` * 255: ``alpha (x - mean) + mean + beta``, rounded and
    clipped to 0..255 (a flat image keeps its value under contrast alone).
    Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    if not 0 <= brightness <= 1:
        raise ValueError(f"brightness must be in [0, 1] (a fraction of 255), got {brightness}")
    if not 0 <= contrast <= 1:
        raise ValueError(f"contrast must be in [0, 1] (the factor stays in [0, 2]), "
                         f"got {contrast}")
    alpha = rng.uniform(1 - contrast, 1 + contrast)
    beta = rng.uniform(-brightness, brightness) * 255
    mean = image.mean()
    adjusted = alpha * (image - mean) + mean + beta  # float64
    return np.clip(np.rint(adjusted), 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 8.0) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma`` (in 0..255 units), clipped.
    Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def augment_image(image: np.ndarray, rng: np.random.Generator, rotate: bool = True,
                  flip: bool = True, crop: bool = True, photometric: bool = True) -> np.ndarray:
    """Compose the transforms: rotation+scale (``data_augment``), horizontal flip, crop,
    brightness/contrast and noise. For an image alone, with no text to keep true.
    Introduced in notebook 01."""
    _check_image(image)
    _check_rng(rng)
    if rotate:
        image = data_augment(image, rng)
    if flip:
        image = random_flip(image, rng, horizontal=True)
    if crop:
        image = random_crop(image, rng)
    if photometric:
        image = random_brightness_contrast(image, rng)
        image = add_noise(image, rng)
    return image


# --- keeping image and text consistent ------------------------------------------------------


def swap_spatial_words(text: str, horizontal: bool = True) -> str:
    """Swap left/right (``horizontal``) or above/below and top/bottom in one pass, whole
    words only, keeping capitals. Introduced in notebook 01."""
    _check_text(text)
    swaps = HORIZONTAL_SWAPS if horizontal else VERTICAL_SWAPS
    pattern = re.compile(r"\b(" + "|".join(swaps) + r")\b", re.IGNORECASE)

    def replace(match):
        word = match.group(0)
        new = swaps[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return pattern.sub(replace, text)


def flip_pair(image: np.ndarray, text: str, horizontal: bool = True) -> tuple[np.ndarray, str]:
    """Flip an image and swap its text's spatial words, so a true caption stays true.
    Introduced in notebook 01."""
    _check_image(image)
    _check_text(text)
    flipped = image[:, ::-1] if horizontal else image[::-1]
    return np.ascontiguousarray(flipped), swap_spatial_words(text, horizontal)


def augment_pair(image: np.ndarray, text: str, rng: np.random.Generator, rotate: bool = False,
                 photometric: bool = True) -> tuple[np.ndarray, str]:
    """Augment an (image, text) pair without making the text false: random horizontal and
    vertical flips with the matching word swaps, brightness/contrast and noise.

    ``rotate`` adds the article's rotation+scale: only safe when the text has no spatial
    relation (a 30 degree turn can move one object past another) and objects stay inside
    the frame, as at the attributes level. Introduced in notebook 01.
    """
    _check_image(image)
    _check_text(text)
    _check_rng(rng)
    if rotate:
        image = data_augment(image, rng)
    for horizontal in (True, False):
        if rng.random() < 0.5:
            image, text = flip_pair(image, text, horizontal)
    if photometric:
        image = add_noise(random_brightness_contrast(image, rng), rng)
    return image, text


def swap_table(tokens, horizontal: bool = True) -> np.ndarray:
    """An id -> id lookup that swaps the spatial words of a vocabulary (identity elsewhere):
    ``table[token_ids]`` flips a batch of token ids. Introduced in notebook 01."""
    tokens = list(tokens)
    table = np.arange(len(tokens), dtype=np.int32)
    swaps = HORIZONTAL_SWAPS if horizontal else VERTICAL_SWAPS
    index = {token: i for i, token in enumerate(tokens)}
    for word, other in swaps.items():
        if word in index and other in index:
            table[index[word]] = index[other]
    return table


def augment_batch(image_batch: np.ndarray, token_ids: np.ndarray, labels: np.ndarray,
                  rng: np.random.Generator, vocabulary, answers=None, rotate: bool = False,
                  photometric: bool = True):
    """``augment_pair`` on a batch of token ids (what ``pipeline.make_dataset`` runs).

    Flips swap the spatial token ids (and, for qa, with ``answers`` given, the answer
    labels left/right and top/bottom). Returns new (image_batch, token_ids, labels).
    Introduced in notebook 01.
    """
    _check_batch(image_batch, "image_batch")
    _check_rng(rng)
    count = len(image_batch)
    token_ids, labels = np.asarray(token_ids), np.asarray(labels)
    if len(token_ids) != count or len(labels) != count:
        raise ValueError(f"image_batch, token_ids and labels must have the same length, got "
                         f"{count}, {len(token_ids)}, {len(labels)}")
    images, ids, labels = image_batch.copy(), token_ids.copy(), labels.copy()
    answer_tables = None
    if answers is not None:
        answer_tables = (swap_table(answers, True), swap_table(answers, False))
    if rotate:
        for i in range(count):
            images[i] = data_augment(images[i], rng)
    for axis, horizontal in ((2, True), (1, False)):
        flip = rng.random(count) < 0.5
        images[flip] = np.flip(images[flip], axis=axis)
        ids[flip] = swap_table(vocabulary, horizontal)[ids[flip]]
        if answer_tables is not None:
            table = answer_tables[0 if horizontal else 1]
            labels[flip] = table[labels[flip].astype(np.int64)].astype(labels.dtype)
    if photometric:
        alpha = rng.uniform(0.8, 1.2, size=(count, 1, 1, 1)).astype(np.float32)
        beta = rng.uniform(-0.2, 0.2, size=(count, 1, 1, 1)).astype(np.float32) * 255
        as_float = images.astype(np.float32)
        mean = as_float.mean(axis=(1, 2, 3), keepdims=True)
        as_float = alpha * (as_float - mean) + mean + beta
        as_float += rng.normal(0.0, 8.0, size=images.shape).astype(np.float32)
        images = np.clip(np.rint(as_float), 0, 255).astype(np.uint8)
    return images, ids, labels


# --- benchmark ------------------------------------------------------------------------------


def benchmark():
    """OpenCV ``data_augment`` against Keras RandomRotation + RandomZoom on 256 images."""
    import keras
    import tensorflow as tf

    from mmcourse import bench
    from mmcourse.data import random_scene, render_scene

    rng = np.random.default_rng(0)
    count = 256
    batch = np.stack([render_scene(random_scene(rng, "relations")) for _ in range(count)])

    def opencv():
        return np.stack([data_augment(image, rng) for image in batch])

    layers = keras.Sequential([
        keras.layers.RandomRotation(30 / 360, fill_mode="constant", seed=0),
        keras.layers.RandomZoom((-0.2, 0.2), fill_mode="constant", seed=0),
    ])
    batch_tensor = tf.constant(batch, tf.float32)
    graph = tf.function(lambda x: layers(x, training=True))

    def keras_eager():
        return layers(batch_tensor, training=True).numpy()

    def keras_graph():
        return graph(batch_tensor).numpy()

    assert opencv().shape == keras_eager().shape == keras_graph().shape == batch.shape
    timings = bench.time_candidates({"opencv data_augment": opencv,
                                     "keras layers (eager)": keras_eager,
                                     "keras layers (tf.function)": keras_graph},
                                    repeats=5, warmup=1, items=count)
    return bench.BenchResult(
        name="augment",
        description=f"rotation +-30 deg and zoom +-20% on {count} images 64x64x3",
        timings=timings,
        ratios=[bench.Ratio("opencv / keras eager",
                            bench.speedup(timings, "keras layers (eager)", "opencv data_augment")),
                bench.Ratio("opencv / keras graph",
                            bench.speedup(timings, "keras layers (tf.function)",
                                          "opencv data_augment"))],
        facts={"images": count, "image_shape": "64x64x3",
               "inputs": "opencv uint8, one image at a time; keras float32, one batch"},
    )
