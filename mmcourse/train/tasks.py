"""Train and evaluate one fusion model: ``train()`` and the CLI ``python -m mmcourse train``
(introduced in notebook 04).

``train(task, fusion, level, config)`` seeds everything, builds the ``Splits``
(``mmcourse.data.pipeline.make_dataset``, or in-memory arrays for a subset), builds the
model (``mmcourse.matcher.model.build_model``), and lets the trainer core
(``mmcourse.train.core.fit_and_evaluate``) fit it, evaluate it on the test split and build
the JSON-ready result. ``config`` is a ``TrainConfig`` (or its fields as keywords:
``epochs=5, seed=0``). ``main(args)`` is the thin command-line wrapper: with ``--json``
stdout carries one JSON object and logs go to stderr.

TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from mmcourse.configs import with_options
from mmcourse.names import LEVELS  # noqa: F401  (re-exported)
from mmcourse.stats import RELATIONAL_KINDS, accuracy_by_type  # noqa: F401  (re-exported)
from mmcourse.train.core import TrainConfig

# Epochs used when ``epochs`` is None: enough for the default model to converge.
DEFAULT_EPOCHS = {"attributes": 15, "relations": 15}
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
#: Models whose defaults differ (used when epochs, batch_size or learning_rate is None): the
#: objects model (notebook 06) takes tiny inputs, so it trains on larger batches, faster.
#: The transformer fits on whole scenes (``matcher.model.cell_trainer``): 160 questions a batch
#: is 16 relations scenes of 10 questions.
FUSION_DEFAULTS = {"objects": {"epochs": 20, "batch_size": 256, "learning_rate": 5e-3},
                   "transformer": {"epochs": 20, "batch_size": 160}}
#: (task, fusion) defaults over those: the objects match model (issue 25) must learn to read
#: which two objects a statement names before any statement pays off, and some seeds find that
#: start late: seed 0 reached 0.915 after 20 epochs, 0.964 after 40; seed 3 0.891 after 40,
#: 0.989 after 80.
#: The pixel transformer's match model finds its start late too: seed 0 reached 0.857 after 20
#: epochs, 0.952 after 40.
TASK_FUSION_DEFAULTS = {("match", "objects"): {"epochs": 80},
                        ("match", "transformer"): {"epochs": 40}}


def log_to_stderr(message: str) -> None:
    """The default logger: one line to stderr, so stdout stays clean for ``--json``."""
    print(message, file=sys.stderr, flush=True)


def _check_names(task: str, fusion: str, level: str) -> None:
    from mmcourse.matcher.model import FUSIONS, TASKS  # noqa: PLC0415  (light: no Keras)

    for arg, value, valid in (("task", task, TASKS), ("fusion", fusion, FUSIONS),
                              ("level", level, LEVELS)):
        if value not in valid:
            raise ValueError(f"unknown {arg} {value!r}; valid names: {', '.join(valid)}")


def load_split(task: str, level: str, split: str, root=None, limit: int | None = None):
    """One split as in-memory arrays: (images uint8 (N, 64, 64, 3), token_ids int32 (N, L),
    labels). ``limit`` keeps the first ``limit`` examples. Introduced in notebook 04."""
    from mmcourse.data import scenes as data
    from mmcourse.data import (
        text,  # noqa: PLC0415
    )

    images, texts, labels = data.load_arrays(task, level, split, root=root)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        images, texts, labels = images[:limit], texts[:limit], labels[:limit]
    length = text.saved_sequence_length(root, level)
    return images, text.vectorize(texts, root=root, sequence_length=length), labels


def _splits(task, level, root, config, train_size, test_size, fusion=None):
    """The run's ``Splits``, the seconds the object extractor took (0 unless ``fusion`` is
    ``objects``) and the questions per scene of the fitted splits (0 unless ``fusion`` is
    ``transformer``): make_dataset for whole splits, in-memory arrays for subsets, object
    tokens for ``objects``, whole scenes with their cell targets for fitting the
    ``transformer``; no validation split unless ``config.validate``."""
    from mmcourse.data import pipeline  # noqa: PLC0415
    from mmcourse.data import scenes as data
    from mmcourse.names import OBJECT_FUSIONS  # noqa: PLC0415
    from mmcourse.train.core import Splits  # noqa: PLC0415

    extract_seconds, questions = [], []
    batch_size, seed = config.batch_size, config.seed

    def split_dataset(split, limit, shuffle):
        if fusion in OBJECT_FUSIONS:  # notebook 06: the detector runs once per scene
            from mmcourse.data import objects  # noqa: PLC0415

            tokens, token_ids, labels, seconds = objects.split_features(task, level, split,
                                                                        root, limit)
            extract_seconds.append(seconds)
            return objects.dataset_from_tokens(tokens, token_ids, labels, batch_size,
                                               shuffle, seed), len(labels)
        if fusion == "transformer" and split != "test":  # notebook 06: fit on whole scenes
            from mmcourse.data import cells  # noqa: PLC0415

            arrays = cells.scene_arrays(task, level, split, root, limit,
                                        questions[0] if questions else None)
            questions.append(arrays["questions"])
            return cells.scene_dataset(arrays, max(1, batch_size // arrays["questions"]),
                                       shuffle, seed), arrays["records"]
        if limit is None:
            size = len(data.load_records(task, level, split, root=root))
            return pipeline.make_dataset(task=task, level=level, split=split,
                                         batch_size=batch_size, shuffle=shuffle, seed=seed,
                                         root=root), size
        images, token_ids, labels = load_split(task, level, split, root=root, limit=limit)
        return pipeline.dataset_from_arrays(images, token_ids, labels, batch_size=batch_size,
                                            shuffle=shuffle, seed=seed), len(labels)

    train, train_examples = split_dataset("train", train_size, True)
    val, val_examples = split_dataset("val", test_size, False) if config.validate else (None, 0)
    test, test_examples = split_dataset("test", test_size, False)
    sizes = {"train": train_examples, "validation": val_examples, "test": test_examples}
    return Splits(train, val, test, sizes), sum(extract_seconds), (questions or [0])[0]


def train(task: str = "match", fusion: str = "concat", level: str = "attributes",
          config: TrainConfig | None = None, *, root=None, strategy: str = "default",
          run_dir=None, resume: bool = False, train_size: int | None = None,
          test_size: int | None = None, callbacks: list | None = None,
          log: Callable[[str], None] | None = log_to_stderr, keep_model: bool = False,
          model_options: dict | None = None, save=None, **options) -> dict:
    """Train ``fusion`` on ``task``/``level`` and evaluate on the test split.

    How to fit is ``config``, a ``mmcourse.train.core.TrainConfig`` (epochs, batch_size,
    learning_rate, seed, patience, schedule, validate), with ``options`` (its field names as
    keywords: ``epochs=5, seed=0``) replacing fields. ``epochs``, ``batch_size`` and
    ``learning_rate`` left at None take ``DEFAULT_EPOCHS``, ``BATCH_SIZE`` and
    ``LEARNING_RATE``, or the model's ``FUSION_DEFAULTS`` (``TASK_FUSION_DEFAULTS``).

    Deterministic under ``seed`` on a given machine: ``seed_everything(seed)`` (which
    turns on TensorFlow op determinism), seeded shuffling and deterministic pipelines.
    ``train_size``/``test_size`` keep the first N examples of each split (for quick runs);
    ``callbacks`` go to ``fit``; ``model_options`` (a dict of ``MatcherConfig`` fields) to
    ``build_model``. Fitting and evaluating is ``mmcourse.train.core.fit_and_evaluate``:
    ``train_seconds`` is the wall time of ``fit`` alone (validation included when
    ``validate``).

    Returns a dict: task, fusion, level, test_accuracy, test_loss, accuracy_by_type (see
    ``accuracy_by_type``; notebook 06), params, train_seconds,
    seconds_per_epoch, epochs_run, seed, batch_size, learning_rate, train_examples,
    test_examples, history (per-epoch metrics); with ``keep_model`` also ``model`` (the
    trained Keras model; drop it before ``json.dumps``). Introduced in notebook 04.

    Notebook 06 adds ``fusion="objects"``: the model reads the object tokens of
    ``mmcourse.data.objects`` (extracted once per scene before training, not counted in
    ``train_seconds``), and the result's ``extract_seconds`` says how long extraction took
    (0.0 for the models that read pixels).

    Notebook 06 adds the relational models. Their default schedule is a cosine decay
    after one warm-up epoch (``mmcourse.train.callbacks.cosine_schedule``).

    Notebook 05 adds: ``strategy`` (``default``, ``mirrored``, ``multiworker``; see
    ``mmcourse.train.distribute``), where ``batch_size`` is the global batch, split over the
    replicas; ``run_dir`` (``best.keras``, ``model.keras`` at the end, ``backup/`` while
    training, ``progress.json``; other workers use ``run_dir/worker_<i>``); ``resume``
    (continue from ``run_dir``'s backup); ``patience`` (early stopping with the best
    weights restored); ``schedule`` (epoch -> learning rate, e.g.
    ``mmcourse.train.callbacks.cosine_schedule``). The result adds ``strategy``, ``replicas``,
    ``initial_epoch``, ``stopped_early`` and ``weights_sha256`` (fingerprint of the final
    weights: the same seed and strategy give the same value).

    Notebook 10 adds ``save``: a ``.keras`` path for the trained model behind its vocabulary
    (and, for qa, its answer words): ``matcher.io.raw_input_model``, which takes raw images and
    texts, loads with ``safe_mode=True`` and exports with ``python -m mmcourse export``. The
    result's ``saved`` is that path (or None).
    """
    _check_names(task, fusion, level)
    config = with_options(TrainConfig, config, options).resolved(
        **{"epochs": DEFAULT_EPOCHS[level], "batch_size": BATCH_SIZE,
           "learning_rate": LEARNING_RATE, **FUSION_DEFAULTS.get(fusion, {}),
           **TASK_FUSION_DEFAULTS.get((task, fusion), {})})
    if save is not None and Path(save).suffix != ".keras":
        raise ValueError(f"save {save}: the file name must end in .keras")
    if save is not None and fusion == "objects":
        raise ValueError("save: the objects model takes object tokens (mmcourse.data.objects), not "
                         "images, so it has no raw-input form to save, export or serve; keep "
                         "it with run_dir (--run-dir DIR) instead")
    log = log or (lambda message: None)

    from mmcourse.train import distribute  # noqa: PLC0415

    # The strategy first: logical CPU devices must exist before TensorFlow starts.
    strategy_object = distribute.make_strategy(strategy)
    replicas = int(strategy_object.num_replicas_in_sync)
    if config.batch_size % replicas:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible "
                         f"by the {replicas} replicas of strategy {strategy!r}")

    from mmcourse.data import scenes as data
    from mmcourse.data import store, text  # noqa: PLC0415
    from mmcourse.matcher import io as matcher_io
    from mmcourse.matcher.io import check_inputs  # noqa: PLC0415
    from mmcourse.matcher.model import (  # noqa: PLC0415
        RELATIONAL_FUSIONS,
        build_model,
        cell_trainer,
    )
    from mmcourse.seeding import seed_everything  # noqa: PLC0415
    from mmcourse.train import callbacks as course_callbacks  # noqa: PLC0415
    from mmcourse.train.core import fit_and_evaluate  # noqa: PLC0415

    root = store.ensure_data(root)
    seed_everything(config.seed)
    splits, extract_seconds, questions = _splits(task, level, root, config, train_size,
                                                 test_size, fusion)
    if config.schedule is None and fusion in (*RELATIONAL_FUSIONS, "objects"):
        config = dataclasses.replace(config, schedule=course_callbacks.cosine_schedule(
            config.learning_rate, config.epochs, min(1, config.epochs - 1), final_fraction=0.02))
    if strategy == "multiworker":  # each worker reads its share of every global batch
        import tensorflow as tf  # noqa: PLC0415

        shard = tf.data.Options()
        shard.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        splits = splits.with_options(shard)
    options = {"vocabulary_size": len(text.load_vocabulary(root)),
               "learning_rate": config.learning_rate, "root": root, **(model_options or {})}
    with strategy_object.scope():
        model = build_model(task, fusion, **options)
        # notebook 06: the transformer fits on whole scenes, with its cell targets
        trainer = cell_trainer(model, questions, config.learning_rate) if questions else None
    distribute.prepare_model(trainer or model, splits.train, strategy_object)
    (image_batch, token_batch), _ = next(iter(splits.test.take(1)))
    check_inputs(model, image_batch, token_batch)  # a clear error before fit's traceback

    log(f"training {task}/{fusion} on {level}: {model.count_params():,} parameters, "
        f"{config.epochs} epochs, seed {config.seed}, strategy {strategy} ({replicas} replicas)")
    test_records = data.load_records(task, level, "test", root=root)[:splits.sizes["test"]]
    worker_dir = distribute.worker_dir(run_dir) if run_dir is not None else None
    fitted = fit_and_evaluate(
        model, splits, config, test_labels=[record["label"] for record in test_records],
        test_kinds=[record["kind"] for record in test_records], name=f"{task}/{fusion}/{level}",
        log=log, run_dir=worker_dir, resume=resume, callbacks=callbacks, strategy=strategy,
        replicas=replicas, trainer=trainer)
    if save is not None:
        raw_model = matcher_io.raw_input_model(
            model, text.load_vocabulary(root), text.saved_sequence_length(root, level),
            answers=text.answer_vocabulary(root) if task == "qa" else None)
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        raw_model.save(save)
        log(f"saved {save}: it takes raw images and texts, the vocabulary"
            f"{' and the answer words' if task == 'qa' else ''} inside")
    result = {"task": task, "fusion": fusion, "level": level, **fitted,
              "saved": None if save is None else str(save), "extract_seconds": extract_seconds}
    if keep_model:
        result["model"] = model
    return result
