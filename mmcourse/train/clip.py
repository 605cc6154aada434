"""CLIP trained and scored on the course's retrieval pairs (notebook 07; ``python -m mmcourse
train --task retrieval``): the held-out colour-shape combinations, the 36 attribute classes for
zero-shot accuracy, the tf.data pipeline, similarity snapshots during training, and
``train_clip``. The model itself is ``mmcourse.clip``.
"""

from __future__ import annotations

from itertools import product

import keras
import numpy as np

from mmcourse.clip import (
    CLIP_LEARNING_RATE,
    INITIAL_TEMPERATURE,
    PROMPT_TEMPLATES,
    build_clip,
    embed_images,
    embed_texts,
    retrieval_recall,
    zero_shot_predict,
)
from mmcourse.data import scenes as data
from mmcourse.data import store, text
from mmcourse.train.core import TrainConfig, fit_logged, fit_summary, warmup_cosine

#: Colour-shape combinations kept out of training at the attributes level (each colour and
#: each shape is still seen, with other partners), to test compositional zero-shot.
HELDOUT_COMBINATIONS = (("red", "triangle"), ("green", "circle"), ("blue", "square"))
CLIP_EPOCHS = {"attributes": 25, "relations": 25}


# --- zero-shot over the attributes level's 36 classes --------------------------------------


def attribute_classes() -> list[tuple[str, str, str]]:
    """Every (size, colour, shape) of the attributes level: 2 x 6 x 3 = 36 classes.
    Introduced in notebook 07."""
    return list(product(data.SIZES, data.COLOURS, data.SHAPES))


def zero_shot_accuracy(model, images, scenes, templates=PROMPT_TEMPLATES, root=None,
                       vocabulary=None) -> float:
    """The fraction of attributes-level ``images`` whose closest prompt, among all 36
    classes, names their scene's true size, colour and shape. Introduced in notebook 07."""
    classes = attribute_classes()
    labels = np.array([classes.index(scene_class(scene)) for scene in scenes])
    if len(labels) != len(images):
        raise ValueError(f"images and scenes must have the same length, got {len(images)} and "
                         f"{len(labels)}")
    predictions = zero_shot_predict(model, images, classes, templates, root, vocabulary)
    return float((predictions == labels).mean())


def scene_class(scene: dict) -> tuple[str, str, str]:
    """(size, colour, shape) of an attributes-level scene record. Introduced in notebook 07."""
    obj = scene["objects"][0]
    return obj["size"], obj["colour"], obj["shape"]


# --- training ------------------------------------------------------------------------------


class SimilaritySnapshots(keras.callbacks.Callback):
    """Records the cosine-similarity matrix of fixed images and captions before training
    and after the epochs named in ``epochs`` (1-based): ``snapshots`` maps epoch -> matrix.
    Introduced in notebook 07."""

    def __init__(self, images, token_ids, epochs):
        super().__init__()
        self.images, self.token_ids, self.epochs = images, token_ids, set(epochs)
        self.snapshots: dict[int, np.ndarray] = {}

    def _take(self, epoch):
        self.snapshots[epoch] = (embed_images(self.model, self.images)
                                 @ embed_texts(self.model, self.token_ids).T)

    def on_train_begin(self, logs=None):
        self._take(0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self._take(epoch + 1)


def _clip_dataset(images, token_ids, caption_ids, batch_size, seed, flip):
    import tensorflow as tf  # noqa: PLC0415

    dataset = tf.data.Dataset.from_tensor_slices((images, token_ids.astype(np.int32),
                                                  caption_ids.astype(np.int32)))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_inputs(image_batch, ids, captions):
        image_batch = tf.cast(image_batch, tf.float32) / 255.0
        if flip:  # attribute captions say nothing about left, right, up or down
            image_batch = tf.image.random_flip_left_right(image_batch, seed=seed)
            image_batch = tf.image.random_flip_up_down(image_batch, seed=seed + 1)
        return (image_batch, ids), captions

    return dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def is_heldout(scene, heldout=HELDOUT_COMBINATIONS) -> bool:
    """Whether an attributes-level scene shows one of the ``heldout`` (colour, shape)
    combinations. Introduced in notebook 07."""
    obj = scene["objects"][0]
    return len(scene["objects"]) == 1 and (obj["colour"], obj["shape"]) in heldout


def train_clip(level: str = "attributes", epochs: int | None = None, seed: int = 0,
               root=None, *, heldout=HELDOUT_COMBINATIONS, batch_size: int = 64,
               learning_rate: float = CLIP_LEARNING_RATE,
               temperature: float = INITIAL_TEMPERATURE, learn_temperature: bool = True,
               flip: bool | None = None, train_size: int | None = None,
               callbacks: list | None = None, log=None, keep_model: bool = False,
               model_options: dict | None = None, builder=None) -> dict:
    """Train ``build_clip`` on the retrieval pairs of ``level`` and evaluate it on the test
    split: the CLI ``python -m mmcourse train --task retrieval``.

    At the attributes level the ``heldout`` colour-shape combinations are removed from
    training; zero-shot accuracy is then measured on the seen classes of the test split
    (``zero_shot_accuracy``; ``zero_shot_by_template`` with one prompt template at a time)
    and on every image of a held-out combination in the train and test splits
    (``zero_shot_heldout_accuracy``), over all 36 classes. Retrieval ranks the
    test split's captions (and images) against each other. ``flip`` (default: on at the
    attributes level) adds random flips, which change no attribute caption.

    ``builder`` (default ``build_clip``) builds the model with ``build_clip``'s arguments;
    notebook 11 passes KerasHub's CLIP (``hub_clip.build_hub_clip``).

    Returns a JSON-ready dict (plus ``model`` with ``keep_model``). Introduced in notebook 07.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    if level not in data.LEVELS:
        raise ValueError(f"level must be one of {data.LEVELS}, got {level!r}")
    config = TrainConfig(epochs, batch_size, learning_rate, seed).resolved(
        epochs=CLIP_EPOCHS[level])
    heldout = tuple(tuple(pair) for pair in heldout) if level == "attributes" else ()
    for colour, shape in heldout:
        if colour not in data.COLOURS or shape not in data.SHAPES:
            raise ValueError(f"heldout must hold (colour, shape) pairs of the course data, got "
                             f"{(colour, shape)!r}")
    log = log or (lambda message: None)
    root = store.ensure_data(root)
    seed_everything(seed)
    vocabulary = text.load_vocabulary(root)

    def split(name):
        images, captions, _ = data.load_arrays("retrieval", level, name, root=root)
        scenes = data.load_records("scenes", level, name, root=root)
        return images, captions, scenes

    train_images, train_captions, train_scenes = split("train")
    train_heldout = np.array([is_heldout(s, heldout) for s in train_scenes], bool)
    keep = ~train_heldout
    if train_size is not None:
        keep &= np.cumsum(keep) <= train_size
    names = sorted(set(train_captions))
    caption_ids = np.array([names.index(c) for c in train_captions])
    token_ids = text.vectorize(train_captions, vocabulary=vocabulary)
    dataset = _clip_dataset(train_images[keep], token_ids[keep], caption_ids[keep],
                            config.batch_size, seed,
                            level == "attributes" if flip is None else flip)

    model = (builder or build_clip)(len(vocabulary), temperature=temperature,
                                    learn_temperature=learn_temperature,
                                    learning_rate=config.learning_rate, **(model_options or {}))
    warmup_cosine(model, config, int(keep.sum()))
    log(f"training CLIP on {level}: {model.count_params():,} parameters, {int(keep.sum())} "
        f"pairs, {config.epochs} epochs, seed {seed}")
    fitted = fit_logged(model, dataset, config, name=f"retrieval/{level}", log=log,
                        callbacks=callbacks, extras=lambda: {
                            "temperature": model.get_layer("logits").temperature})
    train_seconds = fitted["train_seconds"]

    test_images, test_captions, test_scenes = split("test")
    test_seen = np.array([not is_heldout(s, heldout) for s in test_scenes], bool)
    similarity = (embed_images(model, test_images)
                  @ embed_texts(model, text.vectorize(test_captions, vocabulary=vocabulary)).T)
    seen_captions = [c for c, seen in zip(test_captions, test_seen, strict=True) if seen]
    result = {"task": "retrieval", "level": level,
              **retrieval_recall(similarity[test_seen][:, test_seen], seen_captions,
                                 seen_captions),
              "retrieval_pairs": int(test_seen.sum()),
              "hit_rule": "captions repeat, so a retrieved caption (or image) is a hit when "
                          "its caption text equals the query's",
              "retrieval_scope": "the test pairs of the combinations seen in training; "
                                 "recall_with_heldout adds the held-out ones"}
    result["recall_with_heldout"] = retrieval_recall(similarity, test_captions, test_captions)
    if level == "attributes":
        heldout_images = np.concatenate([test_images[~test_seen], train_images[train_heldout]])
        heldout_scenes = ([s for s, seen in zip(test_scenes, test_seen, strict=True) if not seen]
                          + [s for s, out in zip(train_scenes, train_heldout, strict=True) if out])
        seen_scenes = [s for s, seen in zip(test_scenes, test_seen, strict=True) if seen]
        result.update(
            zero_shot_accuracy=zero_shot_accuracy(model, test_images[test_seen], seen_scenes,
                                                  vocabulary=vocabulary),
            zero_shot_by_template={
                template: zero_shot_accuracy(model, test_images[test_seen], seen_scenes,
                                             templates=(template,), vocabulary=vocabulary)
                for template in PROMPT_TEMPLATES},
            zero_shot_heldout_accuracy=zero_shot_accuracy(model, heldout_images, heldout_scenes,
                                                          vocabulary=vocabulary)
            if heldout_scenes else None,
            chance=1 / len(attribute_classes()), zero_shot_classes=len(attribute_classes()),
            heldout_combinations=[list(pair) for pair in heldout],
            heldout_examples=len(heldout_scenes))
    else:  # a caption names every object: no fixed set of classes to prompt
        result.update(zero_shot_accuracy=None, zero_shot_by_template=None,
                      zero_shot_heldout_accuracy=None,
                      chance=1 / len(set(test_captions)), zero_shot_classes=None,
                      heldout_combinations=[], heldout_examples=0)
    result.update(
        fit_summary(model, fitted, config), temperature=model.get_layer("logits").temperature,
        learn_temperature=learn_temperature, train_examples=int(keep.sum()),
        test_examples=len(test_images))
    log(f"[retrieval/{level}] image->text recall@1 {result['recall_at_1']['image_to_text']:.3f}"
        f" in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
