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

from mmcourse.data import augment as augment_module
from mmcourse.data import draw, folders, store, text
from mmcourse.data import scenes as data


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
        dataset = _augment_batches(dataset, seed, vocabulary, answers, rotate, label_dtype)

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
    captions.csv (``data.load_folder``; it must have a label column); its texts use ``folder/vocab.json`` if present,
    else the course vocabulary (unknown words -> 1). Introduced in notebook 01.
    """
    from pathlib import Path

    if folder is not None:
        images, texts, labels = data.load_folder(folder)
        if labels.dtype != np.float32:  # pair ids, not 0/1: training on them is nonsense
            raise folders.DataError(
                f"{Path(folder) / 'captions.csv'} has no label column: make_dataset(folder=...) "
                f"needs labels 0/1 for the match task. Add a label column, or let "
                f"`python -m mmcourse train --data-dir {folder}` (mmcourse.apps.owndata) build "
                f"the false pairs by shuffling captions")
        vocab_root = folder if (Path(folder) / "vocab.json").is_file() else root
        if vocab_root is None:
            store.ensure_data()
        vocabulary = text.load_vocabulary(vocab_root)
        answers, rotate = None, False
        shuffle = True if shuffle is None else shuffle
    else:
        images, texts, labels = data.load_arrays(task, level, split, root)
        vocabulary = text.load_vocabulary(root)
        answers = text.answer_vocabulary(root) if task == "qa" else None
        rotate = level == "attributes"
        shuffle = split == "train" if shuffle is None else shuffle
    length = text.saved_sequence_length(root, level) if folder is None else None
    token_ids = text.vectorize(texts, vocabulary=vocabulary, sequence_length=length)
    return dataset_from_arrays(images, token_ids, labels, batch_size=batch_size,
                               shuffle=shuffle, augment=augment, seed=seed,
                               vocabulary=vocabulary, answers=answers, rotate=rotate)


# --- from disk: tf.data reads and decodes the PNG files (notebook 05) ---------------------


def _augment_batches(dataset, seed: int, vocabulary, answers, rotate: bool, label_dtype):
    """Seeded modality-consistent augmentation of a batched (uint8 images, ids, labels)
    dataset: one seed per batch from a seeded stream that differs every epoch,
    reproducibly, so that augmented runs stay deterministic."""
    import tensorflow as tf

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

    seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, s: augment_tf(*batch, s))  # sequential: the order is fixed


def _split_files(task: str, level: str, split: str, root=None, limit: int | None = None):
    """(image paths, token ids int32 (N, L), labels) of one split, images not read."""
    records = data.load_records(task, level, split, root)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        records = records[:limit]
    folder = store.ensure_data(root) / level / split
    paths = [str(folder / record["image"]) for record in records]
    dtype = np.float32 if task == "match" else np.int32
    labels = np.array([record["label"] for record in records], dtype=dtype)
    token_ids = text.vectorize([record["text"] for record in records], root=root,
                               sequence_length=text.saved_sequence_length(root, level))
    return paths, token_ids.astype(np.int32), labels


def make_disk_dataset(task: str = "match", level: str = "attributes", split: str = "train",
                      batch_size: int = 64, shuffle: bool | None = None, augment: bool = False,
                      seed: int = 0, root=None, limit: int | None = None, cache: bool = True,
                      parallel: bool = True, prefetch: bool = True):
    """Like ``make_dataset``, but tf.data reads the PNG files itself: file paths ->
    ``tf.io.read_file`` -> ``tf.io.decode_png`` (``num_parallel_calls=AUTOTUNE``,
    ``deterministic=True``) -> ``cache()`` -> shuffle -> batch -> augment -> scale to
    [0, 1] -> ``prefetch(AUTOTUNE)``.

    Order matters: the cache holds decoded, un-augmented images, so decoding happens
    once and every epoch still gets fresh (seeded) augmentation; shuffling after the
    cache reshuffles every epoch. ``cache``, ``parallel`` and ``prefetch`` switch those
    steps off, to measure what each one buys. ``limit`` keeps the first N examples.
    Introduced in notebook 05.
    """
    import tensorflow as tf

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    paths, token_ids, labels = _split_files(task, level, split, root, limit)
    shuffle = split == "train" if shuffle is None else shuffle

    def decode(path, ids, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        image.set_shape((draw.IMAGE_SIZE, draw.IMAGE_SIZE, 3))
        return image, ids, label

    dataset = tf.data.Dataset.from_tensor_slices((paths, token_ids, labels))
    parallel_options = ({"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
                        if parallel else {})
    dataset = dataset.map(decode, **parallel_options)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        answers = text.answer_vocabulary(root) if task == "qa" else None
        dataset = _augment_batches(dataset, seed, text.load_vocabulary(root), answers,
                                   rotate=level == "attributes", label_dtype=labels.dtype)

    def to_model_inputs(image_batch, ids, label_batch):
        return (tf.cast(image_batch, tf.float32) / 255.0, ids), label_batch

    dataset = dataset.map(to_model_inputs, **parallel_options)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def make_naive_dataset(task: str = "match", level: str = "attributes", split: str = "train",
                       batch_size: int = 64, root=None, limit: int | None = None):
    """The article's way, for comparison: a Python generator that reads and decodes
    each PNG with OpenCV, one at a time, every epoch (no cache, no parallelism, no
    prefetch), wrapped in ``tf.data.Dataset.from_generator``. Introduced in notebook 05.
    """
    import tensorflow as tf

    paths, token_ids, labels = _split_files(task, level, split, root, limit)

    def batches():
        for start in range(0, len(paths), batch_size):
            stop = start + batch_size
            image_batch = np.stack([data.read_image(path, draw.IMAGE_SIZE)
                                    for path in paths[start:stop]])
            yield ((image_batch.astype(np.float32) / 255.0, token_ids[start:stop]),
                   labels[start:stop])

    size, length = draw.IMAGE_SIZE, token_ids.shape[1]
    signature = ((tf.TensorSpec((None, size, size, 3), tf.float32),
                  tf.TensorSpec((None, length), tf.int32)),
                 tf.TensorSpec((None,), tf.as_dtype(labels.dtype)))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def training_step_rate(model, dataset, steps: int, warmup_steps: int = 2) -> float:
    """Training steps per second of ``model`` fed by ``dataset`` (repeated), timed over
    ``steps`` steps after ``warmup_steps`` untimed ones (tracing). Introduced in notebook 05.
    """
    import time

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    iterator = iter(dataset.repeat())
    for _ in range(warmup_steps):
        model.train_on_batch(*next(iterator))
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*next(iterator))
    return steps / (time.perf_counter() - start)


def input_bound_fraction(model, dataset, steps: int = 20, rounds: int = 3) -> float:
    """The share of training time spent waiting for input, in [0, 1]:
    ``1 - rate(dataset) / rate(one cached batch)``; the second rate is the model's
    compute alone. Near 0: the pipeline keeps up; near 1: the processor starves.
    Both rates are the median of ``rounds`` interleaved timings of ``steps`` steps, so
    that a busy machine slows both alike. Introduced in notebook 05.
    """
    import statistics

    compute_only = repeat_batch(next(iter(dataset)))
    with_input, alone = [], []
    for _ in range(rounds):
        alone.append(training_step_rate(model, compute_only, steps))
        with_input.append(training_step_rate(model, dataset, steps))
    ratio = statistics.median(with_input) / statistics.median(alone)
    return float(min(max(1.0 - ratio, 0.0), 1.0))


def repeat_batch(batch):
    """A dataset that repeats one batch forever: the model's compute alone, with no input
    cost. Introduced in notebook 05."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensors(batch).repeat()
