"""tf.data input pipelines for the course data and your own (introduced in notebook 01).

``make_dataset`` reads one task, level and split and yields
``((image_batch, token_ids), label_batch)``: images float32 in [0, 1] (B, 64, 64, 3),
token ids int32 (B, SEQUENCE_LENGTH). Shuffling and augmentation are seeded: the same
``seed`` gives the same batches in the same order, epoch after epoch, on any run (each
epoch differs from the last, reproducibly). Augmentation is modality-consistent
(``augment.augment_batch``): a flipped image gets its spatial words swapped.
TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import numpy as np

from mmcourse import augment as augment_module
from mmcourse import data, text


def dataset_from_arrays(images, token_ids, labels, batch_size: int = 64, shuffle: bool = False,
                        augment: bool = False, seed: int = 0, vocabulary=None, answers=None,
                        rotate: bool = False):
    """A batched, prefetched ``tf.data.Dataset`` of ``((image, token_ids), label)``.

    ``images`` uint8 (N, H, W, 3); ``token_ids`` int (N, L); ``labels`` (N,). With
    ``augment``, ``vocabulary`` (the token list) is needed to swap spatial words, and
    ``answers`` to swap qa answers; ``rotate`` adds rotation+scale (single objects only).
    Introduced in notebook 01.
    """
    import tensorflow as tf

    images, token_ids, labels = np.asarray(images), np.asarray(token_ids), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids must be integers (N, L), got {token_ids.dtype} "
                         f"{token_ids.shape}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if not len(images) == len(token_ids) == len(labels):
        raise ValueError(f"images, token_ids and labels must have the same length N, got "
                         f"{len(images)}, {len(token_ids)}, {len(labels)}")
    if len(images) == 0:
        raise ValueError("images is empty: need at least one example")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if augment and vocabulary is None:
        raise ValueError("augment=True needs vocabulary= (the token list) to swap spatial words")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")

    label_dtype = labels.dtype
    token_ids = token_ids.astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((images, token_ids, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        vocabulary = list(vocabulary)
        answers = list(answers) if answers is not None else None

        def augment_numpy(image_batch, ids, label_batch, batch_seed):
            rng = np.random.default_rng(int(batch_seed) & 0xFFFFFFFFFFFFFFFF)
            return augment_module.augment_batch(image_batch, ids, label_batch, rng, vocabulary,
                                                answers=answers, rotate=rotate)

        def augment_tf(image_batch, ids, label_batch, batch_seed):
            out = tf.numpy_function(augment_numpy, [image_batch, ids, label_batch, batch_seed],
                                    [tf.uint8, tf.int32, tf.as_dtype(label_dtype)], stateful=False)
            for tensor, like in zip(out, (image_batch, ids, label_batch), strict=True):
                tensor.set_shape(like.shape)
            return tuple(out)

        # One seed per batch from a seeded stream that differs every epoch, reproducibly.
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, s: augment_tf(*batch, s), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)

    def to_model_inputs(image_batch, ids, label_batch):
        return (tf.cast(image_batch, tf.float32) / 255.0, ids), label_batch

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(task: str = "match", level: str = "attributes", split: str = "train",
                 batch_size: int = 64, shuffle: bool | None = None, augment: bool = False,
                 seed: int = 0, root=None, folder=None):
    """The course data (or, with ``folder``, your own) as a ``tf.data.Dataset``.

    Yields ``((image_batch float32 [0, 1] (B, 64, 64, 3), token_ids int32 (B, L)),
    label_batch)``. ``shuffle`` defaults to True for the train split (and for a folder).
    ``augment`` applies flips with word swaps and brightness/contrast/noise, plus the
    article's rotation+scale at the attributes level. ``folder`` reads images plus
    captions.csv (``data.load_folder``); its texts use ``folder/vocab.json`` if present,
    else the course vocabulary (unknown words -> 1). Introduced in notebook 01.
    """
    from pathlib import Path

    if folder is not None:
        images, texts, labels = data.load_folder(folder)
        vocab_root = folder if (Path(folder) / "vocab.json").is_file() else root
        if vocab_root is None:
            data.ensure_data()
        vocabulary = text.load_vocabulary(vocab_root)
        answers, rotate = None, False
        shuffle = True if shuffle is None else shuffle
    else:
        images, texts, labels = data.load_arrays(task, level, split, root)
        vocabulary = text.load_vocabulary(root)
        answers = text.answer_vocabulary(root) if task == "qa" else None
        rotate = level == "attributes"
        shuffle = split == "train" if shuffle is None else shuffle
    token_ids = text.vectorize(texts, vocabulary=vocabulary)
    return dataset_from_arrays(images, token_ids, labels, batch_size=batch_size,
                               shuffle=shuffle, augment=augment, seed=seed,
                               vocabulary=vocabulary, answers=answers, rotate=rotate)
