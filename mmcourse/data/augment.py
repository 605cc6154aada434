"""Image augmentation with OpenCV, and augmentation that keeps image and text consistent
(introduced in notebook 01).

``data_augment`` is the source article's function (random rotation and scale), with its
randomness taken from a ``numpy.random.Generator``. The other transforms each take
``(image, rng, ...)``; ``augment_image`` composes them. Images are RGB uint8 (H, W, 3).

A geometric transform can make a caption false: mirror "a red circle left of a blue
square" and the red circle is now on the right. ``flip_pair`` and ``augment_pair`` flip
the image and swap the spatial words of its text (left/right, or above/below and
top/bottom; in Chinese 左/右 and 上/下) together, so the pair stays true.

A word can only be swapped safely where it is spatial: "the right answer" or 马上 ("at
once") must not become "the left answer" or 马下. ``flip_safe`` decides per caption and
axis; a caption that is not safe is never flipped on that axis (its image neither), and
``augment_batch`` also refuses rows with an unknown token ([UNK]: it may hide a spatial
word) or a spatial word whose partner is missing from the vocabulary (notebook 09).
"""

from __future__ import annotations

import re

import cv2
import numpy as np

#: Words a horizontal / vertical flip turns into each other, per language.
SPATIAL_SWAPS = {
    "en": {"horizontal": {"left": "right", "right": "left", "leftmost": "rightmost",
                          "rightmost": "leftmost"},
           "vertical": {"above": "below", "below": "above", "top": "bottom", "bottom": "top"}},
    "zh": {"horizontal": {"左": "右", "右": "左"}, "vertical": {"上": "下", "下": "上"}},
}
#: All languages together: what the flips swap.
HORIZONTAL_SWAPS = {k: v for swaps in SPATIAL_SWAPS.values() for k, v in swaps["horizontal"].items()}
VERTICAL_SWAPS = {k: v for swaps in SPATIAL_SWAPS.values() for k, v in swaps["vertical"].items()}
#: English words that are spatial wherever they occur (always safe to swap).
_ALWAYS_SPATIAL = {"above", "below", "leftmost", "rightmost"}
#: An English left/right/top/bottom is spatial when the next token is one of these, or when
#: it ends the text ("on the left", "left of", "left to right", "top or bottom").
_EN_SPATIAL_NEXT = {"of", "to", "or", "and", "side", "sides", "hand", "half", "corner",
                    "edge", "part", "end", "from"}
#: ... or when "to" or one of these pairs precedes it ("left to right", "on the left, a").
_EN_SPATIAL_BEFORE = {("on", "the"), ("to", "the"), ("at", "the"), ("from", "the")}
#: A Chinese 左/右/上/下 is spatial when the next token is one of these (左边, 上面, 左上),
#: or when the previous one is one of the second set (左上, 从左到右, 向右).
_ZH_SPATIAL_NEXT = {"边", "侧", "方", "面", "半", "部", "上", "下", "端"}
_ZH_SPATIAL_PREVIOUS = {"左", "右", "从", "到", "向", "往", "靠"}


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
    """Swap left/right and 左/右 (``horizontal``) or above/below, top/bottom and 上/下 in one
    pass, English whole words only, keeping capitals. Introduced in notebook 01; Chinese in
    notebook 09."""
    _check_text(text)
    swaps = HORIZONTAL_SWAPS if horizontal else VERTICAL_SWAPS
    words = [w for w in swaps if w.isascii()]
    characters = [w for w in swaps if not w.isascii()]
    pattern = re.compile(r"\b(?:" + "|".join(words) + r")\b|[" + "".join(characters) + "]",
                         re.IGNORECASE)

    def replace(match):
        word = match.group(0)
        new = swaps[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return pattern.sub(replace, text)


def _tokens_flip_safe(tokens, horizontal: bool) -> bool:
    """Whether every spatial word of a token list (``text.split_words``) can be swapped."""
    swaps = HORIZONTAL_SWAPS if horizontal else VERTICAL_SWAPS
    for index, token in enumerate(tokens):
        if token not in swaps or token in _ALWAYS_SPATIAL:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        previous = tokens[index - 1] if index else None
        if token.isascii():
            before = tuple(tokens[max(index - 2, 0):index])
            if following is not None and following not in _EN_SPATIAL_NEXT and \
                    previous != "to" and before not in _EN_SPATIAL_BEFORE:
                return False
        elif following not in _ZH_SPATIAL_NEXT and previous not in _ZH_SPATIAL_PREVIOUS:
            return False  # 左上 (upper left) keeps 上 spatial, so does 从左到右
    return True


def flip_safe(text: str, horizontal: bool = True) -> bool:
    """Whether a flip (``horizontal`` or vertical) can keep ``text`` true by swapping its
    spatial words: every left/right/top/bottom (or 左/右/上/下) must be used spatially
    ("left of", "on the right", "at the top or bottom", 左边, 上面, 左上); "the right
    answer", "he left", 左右 ("about") or 马上 ("at once") make it unsafe. Texts without
    spatial words are safe. Introduced in notebook 09."""
    from mmcourse.data.text import split_words

    _check_text(text)
    return _tokens_flip_safe(split_words(text), horizontal)


def flip_pair(image: np.ndarray, text: str, horizontal: bool = True) -> tuple[np.ndarray, str]:
    """Flip an image and swap its text's spatial words, so a true caption stays true.
    A ``ValueError`` when the text is not ``flip_safe``. Introduced in notebook 01."""
    _check_image(image)
    _check_text(text)
    if not flip_safe(text, horizontal):
        raise ValueError(f"text {text!r} has a spatial word that cannot be swapped safely "
                         f"for a {'horizontal' if horizontal else 'vertical'} flip "
                         f"(see augment.flip_safe); do not flip this pair")
    flipped = image[:, ::-1] if horizontal else image[::-1]
    return np.ascontiguousarray(flipped), swap_spatial_words(text, horizontal)


def augment_pair(image: np.ndarray, text: str, rng: np.random.Generator, rotate: bool = False,
                 photometric: bool = True) -> tuple[np.ndarray, str]:
    """Augment an (image, text) pair without making the text false: random horizontal and
    vertical flips with the matching word swaps (none on an axis where the text is not
    ``flip_safe``), brightness/contrast and noise.

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
        if rng.random() < 0.5 and flip_safe(text, horizontal):
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


def flip_safe_rows(token_ids, vocabulary, horizontal: bool = True) -> np.ndarray:
    """bool (N,): which rows of token ids may be flipped on this axis: ``flip_safe`` on
    their tokens, no [UNK] (id 1, it may hide a spatial word) and no spatial word whose
    partner is missing from ``vocabulary``. Introduced in notebook 09."""
    tokens = list(vocabulary)
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2:
        raise ValueError(f"token_ids must be 2-D (N, L), got shape {token_ids.shape}")
    swaps = HORIZONTAL_SWAPS if horizontal else VERTICAL_SWAPS
    known = set(tokens)
    lonely = {i for i, t in enumerate(tokens) if t in swaps and swaps[t] not in known}
    safe = np.ones(len(token_ids), bool)
    spatial_ids = {i for i, t in enumerate(tokens) if t in swaps} | {1}
    for row, ids in enumerate(token_ids):
        present = set(ids.tolist())
        if not present & spatial_ids:
            continue  # no spatial word, no unknown word: always safe
        if 1 in present or present & lonely:
            safe[row] = False
            continue
        safe[row] = _tokens_flip_safe([tokens[i] for i in ids if i > 0], horizontal)
    return safe


def augment_batch(image_batch: np.ndarray, token_ids: np.ndarray, labels: np.ndarray,
                  rng: np.random.Generator, vocabulary, answers=None, rotate: bool = False,
                  photometric: bool = True):
    """``augment_pair`` on a batch of token ids (what ``pipeline.make_dataset`` runs).

    Flips swap the spatial token ids (and, for qa, with ``answers`` given, the answer
    labels left/right and top/bottom); rows that are not ``flip_safe_rows`` are not
    flipped on that axis. Returns new (image_batch, token_ids, labels).
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
        if flip.any():
            flip &= flip_safe_rows(ids, vocabulary, horizontal)
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
    from mmcourse.data.draw import render_scene
    from mmcourse.data.scenes import random_scene

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
        ratios=[bench.Ratio("keras eager / opencv time",
                            bench.speedup(timings, "keras layers (eager)", "opencv data_augment")),
                bench.Ratio("keras graph / opencv time",
                            bench.speedup(timings, "keras layers (tf.function)",
                                          "opencv data_augment"))],
        facts={"images": count, "image_shape": "64x64x3",
               "inputs": "opencv uint8, one image at a time; keras float32, one batch"},
    )
