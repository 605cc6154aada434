"""Objects against pixels: a classical object extractor, no learning (notebook 06).

Before end-to-end models, visual question answering reasoned over detected objects
(bottom-up attention, Anderson et al. 2018); the relation network paper also reports its
result on state descriptions (Santoro et al. 2017). This module is the course's detector:
OpenCV colour segmentation and contours turn a scene into a fixed-size set of object
tokens, which the ``objects`` fusion (``mmcourse.matcher.model.build_model``) reasons over.

For each pixel, the nearest of the background and the six palette colours
(``mmcourse.data.draw.COLOURS``) after a 3x3 median blur; each colour's mask is split into
connected components, and every component of at least ``min_area`` pixels is an object.
Its token (``TOKEN_FEATURES``, float32):

- ``colour``: one-hot over the six palette colours (6 values);
- ``vertices``: corners of ``cv2.approxPolyDP`` of its outer contour, divided by 6;
- ``circularity``: 4 pi area / perimeter^2 of the contour (1 for a disc);
- ``extent``: its pixels over its bounding box (square 1, disc pi/4, triangle 1/2);
- ``aspect``: bounding-box width / height;
- ``x``, ``y``: pixel centroid, scaled to [-1, 1] (image coordinates: y grows downwards);
- ``size``: sqrt(pixels / pi) / 8, the radius of a disc of its area over 8 pixels;
- ``present``: 1 for an object, 0 for a padding slot (all other features 0 too).

Tokens are padded to ``max_objects`` (default 4, the most a relations scene holds); when
more components are found, the largest are kept. They are ordered by colour, then x.
The generator's own scenes (``scenes.jsonl``) are the reference the tests check against.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from mmcourse.configs import positive_int
from mmcourse.data import draw
from mmcourse.data import scenes as data

#: The features of one object token, in order (see the module docstring).
TOKEN_FEATURES = (*(f"colour_{name}" for name in draw.COLOURS), "vertices", "circularity",
                  "extent", "aspect", "x", "y", "size", "present")
FEATURES = len(TOKEN_FEATURES)
#: The most objects a relations scene holds: the default number of token slots.
MAX_OBJECTS = 4
#: Components smaller than this many pixels are noise, not objects (the smallest object
#: the generator draws, a triangle of r = 6, covers about 65 pixels).
MIN_AREA = 12
_PALETTE = np.array([draw.BACKGROUND, *draw.COLOURS.values()], np.float32)  # (7, 3)
_PALETTE_NORMS = (_PALETTE**2).sum(axis=1)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def colour_labels(image, blur: int = 3) -> np.ndarray:
    """Each pixel's nearest palette entry, int (H, W): 0 the background, 1 + i the i-th of
    ``draw.COLOURS``. ``blur`` is the median filter's size (odd, 0 or 1 for none), which
    removes pixel noise before the colours are compared. Introduced in notebook 06."""
    image = _check_image(image)
    if isinstance(blur, bool) or not isinstance(blur, (int, np.integer)) or blur < 0 \
            or (blur > 1 and blur % 2 == 0):
        raise ValueError(f"blur must be 0, 1 or an odd int >= 3, got {blur!r}")
    if blur > 1:
        image = cv2.medianBlur(np.ascontiguousarray(image), int(blur))
    pixels = image.reshape(-1, 3).astype(np.float32)
    # squared distances |p - c|^2 without the |p|^2 term, the same for every palette entry
    distances = _PALETTE_NORMS - 2 * pixels @ _PALETTE.T
    return distances.argmin(axis=-1).reshape(image.shape[:2])


def detect_objects(image, min_area: int = MIN_AREA, blur: int = 3) -> list[dict]:
    """The objects of one scene image (RGB uint8, H x W x 3) as dicts: colour (a name of
    ``draw.COLOURS``), x, y (pixel centroid), area (pixels), vertices, circularity, extent,
    aspect (see the module docstring). Ordered by colour, then x. Introduced in notebook 06.
    """
    min_area = positive_int("min_area", min_area)
    labels = colour_labels(image, blur)
    found = []
    for index, colour in enumerate(draw.COLOURS, start=1):
        mask = (labels == index).astype(np.uint8)
        if not mask.any():
            continue
        count, components, stats, centroids = cv2.connectedComponentsWithStats(mask, 8)
        for component in range(1, count):
            area = int(stats[component, cv2.CC_STAT_AREA])
            if area < min_area:
                continue
            piece = (components == component).astype(np.uint8)
            contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            contour = max(contours, key=cv2.contourArea)
            perimeter = cv2.arcLength(contour, True)
            corners = cv2.approxPolyDP(contour, 0.12 * np.sqrt(area), True)
            width = int(stats[component, cv2.CC_STAT_WIDTH])
            height = int(stats[component, cv2.CC_STAT_HEIGHT])
            found.append({
                "colour": colour, "x": float(centroids[component, 0]),
                "y": float(centroids[component, 1]), "area": area,
                "vertices": len(corners),
                "circularity": float(4 * np.pi * area / max(perimeter, 1.0) ** 2),
                "extent": area / (width * height), "aspect": width / height})
    return found


def object_tokens(image, max_objects: int = MAX_OBJECTS, min_area: int = MIN_AREA,
                  blur: int = 3) -> np.ndarray:
    """One scene as ``max_objects`` object tokens, float32 (max_objects, ``FEATURES``):
    the objects of ``detect_objects`` (the largest ``max_objects`` when there are more),
    then zero rows for the empty slots. Introduced in notebook 06."""
    max_objects = positive_int("max_objects", max_objects)
    image = _check_image(image)
    found = detect_objects(image, min_area, blur)
    if len(found) > max_objects:
        keep = sorted(sorted(found, key=lambda o: -o["area"])[:max_objects],
                      key=found.index)
        found = keep
    tokens = np.zeros((max_objects, FEATURES), np.float32)
    height, width = image.shape[:2]
    colours = tuple(draw.COLOURS)
    for row, obj in zip(tokens, found, strict=False):
        row[colours.index(obj["colour"])] = 1.0
        row[len(colours):] = (obj["vertices"] / 6, obj["circularity"], obj["extent"],
                              obj["aspect"], obj["x"] / (width - 1) * 2 - 1,
                              obj["y"] / (height - 1) * 2 - 1,
                              np.sqrt(obj["area"] / np.pi) / 8, 1.0)
    return tokens


def scene_tokens(images, max_objects: int = MAX_OBJECTS, min_area: int = MIN_AREA,
                 blur: int = 3) -> np.ndarray:
    """``object_tokens`` of a batch of images (N, H, W, 3) uint8: float32 (N, max_objects,
    ``FEATURES``). Introduced in notebook 06."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be RGB uint8 (N, H, W, 3), got {images.dtype} "
                         f"{images.shape}")
    return np.stack([object_tokens(image, max_objects, min_area, blur) for image in images]) \
        if len(images) else np.zeros((0, max_objects, FEATURES), np.float32)


def compare_with_scene(found: list[dict], objects: list[dict], tolerance: float = 1.0) -> dict:
    """Score ``detect_objects`` against the generator's objects of the same scene (colours
    are unique in a scene, so objects are matched by colour): ``count_ok`` (as many found as
    drawn), ``colours_ok`` (the same colours), ``centres_ok`` (every drawn object's colour
    found once, its centroid within ``tolerance`` pixels of the drawn centre), and
    ``max_error`` (pixels, the largest centre error over matched objects; None if none).
    Introduced in notebook 06."""
    drawn = {o["colour"]: o for o in objects}
    by_colour: dict[str, list[dict]] = {}
    for obj in found:
        by_colour.setdefault(obj["colour"], []).append(obj)
    errors = [float(np.hypot(pieces[0]["x"] - drawn[c]["x"], pieces[0]["y"] - drawn[c]["y"]))
              for c, pieces in by_colour.items() if c in drawn and len(pieces) == 1]
    centres_ok = all(len(by_colour.get(c, [])) == 1 for c in drawn) and \
        len(errors) == len(drawn) and all(e <= tolerance for e in errors)
    return {"count_ok": len(found) == len(objects),
            "colours_ok": sorted(by_colour) == sorted(drawn),
            "centres_ok": bool(centres_ok),
            "max_error": max(errors) if errors else None}


# --- the features of a whole split, for training (train --fusion objects) -------------------


def split_features(task: str, level: str, split: str, root=None, limit: int | None = None,
                   max_objects: int = MAX_OBJECTS):
    """One split as (object tokens float32 (N, max_objects, FEATURES), token_ids int32
    (N, L), labels, seconds): each scene image is read and extracted once, however many
    records ask about it; ``seconds`` is the time extraction took. ``limit`` keeps the first
    ``limit`` records. Introduced in notebook 06."""
    from mmcourse.data import text

    records = data.load_records(task, level, split, root)
    if limit is not None:
        records = records[:positive_int("limit", limit)]
    folder = data.data_root(root) / level / split
    start = time.perf_counter()
    cache: dict[str, np.ndarray] = {}
    for record in records:
        if record["image"] not in cache:
            image = data.read_image(folder / record["image"], draw.IMAGE_SIZE)
            cache[record["image"]] = object_tokens(image, max_objects)
    seconds = time.perf_counter() - start
    tokens = np.stack([cache[record["image"]] for record in records])
    token_ids = text.vectorize([record["text"] for record in records], root=root,
                               sequence_length=text.saved_sequence_length(root, level))
    dtype = np.float32 if task == "match" else np.int32
    labels = np.array([record["label"] for record in records], dtype=dtype)
    return tokens, np.asarray(token_ids, np.int32), labels, seconds


def dataset_from_tokens(tokens, token_ids, labels, batch_size: int = 64, shuffle: bool = False,
                        seed: int = 0):
    """A batched, prefetched ``tf.data.Dataset`` of ``((object tokens, token_ids), label)``,
    shuffled with ``seed`` each epoch when ``shuffle``. Introduced in notebook 06."""
    tokens, token_ids, labels = np.asarray(tokens), np.asarray(token_ids), np.asarray(labels)
    if tokens.ndim != 3 or tokens.dtype != np.float32:
        raise ValueError(f"tokens must be float32 (N, objects, features), got {tokens.dtype} "
                         f"{tokens.shape}")
    if not len(tokens) == len(token_ids) == len(labels) or not len(tokens):
        raise ValueError(f"tokens, token_ids and labels must have the same length N >= 1, got "
                         f"{len(tokens)}, {len(token_ids)}, {len(labels)}")
    batch_size = positive_int("batch_size", batch_size)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(((tokens, token_ids), labels))
    if shuffle:
        dataset = dataset.shuffle(len(tokens), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
