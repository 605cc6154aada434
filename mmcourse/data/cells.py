"""What the generator knows about each cell of a scene: the targets that teach a pixel
model where the objects are (notebook 06).

The ``transformer`` fusion reads an 8x8 grid of regions (``mmcourse.matcher.model``). At
training time each region also learns to say whether an object's centre lies in it, and
if so, which colour and shape the object has and where exactly its centre is. The scene
files already hold all of it (``scenes.jsonl``), so these targets cost no labelling: they
are the auxiliary targets the generator knows, in the spirit of detector pre-training for
bottom-up attention (Anderson et al. 2018), learned here together with the answers.

One cell's target, float32 (``TARGETS``):

- ``colour``: 0 when no object's centre lies in the cell, else 1 + the index of the
  object's colour in ``draw.COLOURS``;
- ``shape``: the index of its shape in ``draw.SHAPES`` (0 where no centre lies);
- ``dx``, ``dy``: the centre's offset from the cell's centre, in cells (in [-0.5, 0.5)).

Centres differ by at least ``statements.MARGIN`` = 8 pixels in x and in y, one cell, so no
two objects share a cell.
"""

from __future__ import annotations

import numpy as np

from mmcourse.configs import positive_int
from mmcourse.data import draw
from mmcourse.data import scenes as data

#: The cells per side: the grid of the pixel models' region tokens (64 / 8 = 8 pixels).
GRID = 8
#: The numbers of one cell's target, in order (see the module docstring).
TARGETS = ("colour", "shape", "dx", "dy")


def cell_targets(objects: list[dict], grid: int = GRID,
                 image_size: int = draw.IMAGE_SIZE) -> np.ndarray:
    """The targets of one scene's cells, float32 (grid, grid, 4), from its ``objects``
    (dicts with colour, shape, x, y in pixels, as in ``scenes.jsonl``); row = y, column = x.
    Introduced in notebook 06."""
    grid, image_size = positive_int("grid", grid), positive_int("image_size", image_size)
    if image_size % grid:
        raise ValueError(f"image_size {image_size} must be a multiple of grid {grid}")
    cell = image_size // grid
    targets = np.zeros((grid, grid, len(TARGETS)), np.float32)
    for obj in objects:
        x, y = obj["x"], obj["y"]
        if not (0 <= x < image_size and 0 <= y < image_size):
            raise ValueError(f"object centre ({x}, {y}) lies outside the {image_size}-pixel image")
        column, row = int(x // cell), int(y // cell)
        if targets[row, column, 0]:
            raise ValueError(f"two object centres lie in cell (row {row}, column {column}); "
                             f"the cell targets need one centre per cell")
        targets[row, column] = (1 + tuple(draw.COLOURS).index(obj["colour"]),
                                draw.SHAPES.index(obj["shape"]),
                                (x - (column * cell + (cell - 1) / 2)) / cell,
                                (y - (row * cell + (cell - 1) / 2)) / cell)
    return targets


def scene_arrays(task: str, level: str, split: str, root=None, limit: int | None = None,
                 questions: int | None = None, grid: int = GRID) -> dict:
    """A split grouped by scene, for fitting on whole scenes (``matcher.model.cell_trainer``):
    each scene's image once, all its questions (or statements) beside it. ``limit`` keeps
    the first ``limit`` records, as ``train.tasks.load_split`` does.

    Returns a dict: ``images`` uint8 (S, H, W, 3), ``token_ids`` int32 (S, Q, L), ``labels``
    (S, Q), ``cells`` float32 (S, grid, grid, 4) (``cell_targets``), ``questions`` Q and
    ``records`` (how many records it holds). Q is ``questions``, or by default the most
    records any scene has; a scene with more than Q records fills several rows. A row with
    fewer than Q records repeats them in turn to fill its Q places, so every record is
    fitted and none is invented. Introduced in notebook 06."""
    from mmcourse.data import text

    records = data.load_records(task, level, split, root)
    if limit is not None:
        records = records[:positive_int("limit", limit)]
    if not records:
        raise ValueError(f"{level}/{split} has no {task} records")
    by_scene: dict[int, list[dict]] = {}
    for record in records:
        by_scene.setdefault(record["scene"], []).append(record)
    questions = max(len(group) for group in by_scene.values()) if questions is None \
        else positive_int("questions", questions)
    scenes = {scene["scene"]: scene for scene in data.load_records("scenes", level, split, root)}
    folder = data.data_root(root) / level / split
    order, filled = [], []
    for scene in sorted(by_scene):
        group = by_scene[scene]
        for start in range(0, len(group), questions):
            row = group[start:start + questions]
            order.append(scene)
            filled.append([row[i % len(row)] for i in range(questions)])
    length = text.saved_sequence_length(root, level)
    token_ids = text.vectorize([record["text"] for group in filled for record in group],
                               root=root, sequence_length=length)
    dtype = np.float32 if task == "match" else np.int32
    return {
        "images": np.stack([data.read_image(folder / scenes[scene]["image"], draw.IMAGE_SIZE)
                            for scene in order]),
        "token_ids": np.asarray(token_ids, np.int32).reshape(len(order), questions, length),
        "labels": np.array([[record["label"] for record in group] for group in filled], dtype),
        "cells": np.stack([cell_targets(scenes[scene]["objects"], grid) for scene in order]),
        "questions": questions, "records": len(records)}


def scene_dataset(arrays: dict, scenes_per_batch: int = 16, shuffle: bool = False,
                  seed: int = 0):
    """A batched, prefetched ``tf.data.Dataset`` of ``((images float32 [0, 1] (S, H, W, 3),
    token_ids (S, Q, L)), {"answer": labels (S, Q), "cells": (S, grid, grid, 4)})`` from
    ``scene_arrays``' dict, shuffled by scene with ``seed`` each epoch when ``shuffle``.
    Introduced in notebook 06."""
    scenes_per_batch = positive_int("scenes_per_batch", scenes_per_batch)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (arrays["images"], arrays["token_ids"], arrays["labels"], arrays["cells"]))
    if shuffle:
        dataset = dataset.shuffle(len(arrays["images"]), seed=seed,
                                  reshuffle_each_iteration=True)

    def to_model(images, token_ids, labels, cells):
        return (tf.cast(images, tf.float32) / 255.0, token_ids), {"answer": labels,
                                                                  "cells": cells}

    return dataset.batch(scenes_per_batch).map(
        to_model, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE)
