"""Train and evaluate one fusion model: ``train()`` and the CLI ``python -m mmcourse train``
(introduced in notebook 04).

``train(task, fusion, level, epochs, seed, root)`` seeds everything, builds the
datasets (``mmcourse.data.pipeline.make_dataset``, or in-memory arrays for a subset),
builds the model (``mmcourse.matcher.model.build_model``), fits it, evaluates it on the test
split and returns a JSON-ready dict. ``main(args)`` is the thin command-line wrapper:
with ``--json`` stdout carries one JSON object and logs go to stderr.

TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mmcourse.names import LEVELS  # noqa: F401  (re-exported)
from mmcourse.stats import RELATIONAL_KINDS, accuracy_by_type  # noqa: F401  (re-exported)

# Epochs used when ``epochs`` is None: enough for the default model to converge.
DEFAULT_EPOCHS = {"attributes": 15, "relations": 15}
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
#: Models whose defaults differ (used when epochs, batch_size or learning_rate is None): the
#: objects model (notebook 06) takes tiny inputs, so it trains on larger batches, faster.
FUSION_DEFAULTS = {"objects": {"epochs": 20, "batch_size": 256, "learning_rate": 5e-3}}


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
    from mmcourse.data import text  # noqa: PLC0415

    images, texts, labels = data.load_arrays(task, level, split, root=root)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        images, texts, labels = images[:limit], texts[:limit], labels[:limit]
    length = text.saved_sequence_length(root, level)
    return images, text.vectorize(texts, root=root, sequence_length=length), labels


def _datasets(task, level, seed, root, batch_size, train_size, test_size, validate,
              fusion=None):
    """(train, val or None, test) datasets, the numbers of train and test examples, and the
    seconds the object extractor took (0 unless ``fusion`` is ``objects``): make_dataset for
    whole splits, in-memory arrays for subsets, object tokens for ``objects``."""
    from mmcourse.data import pipeline  # noqa: PLC0415
    from mmcourse.data import scenes as data
    from mmcourse.names import OBJECT_FUSIONS  # noqa: PLC0415

    extract_seconds = []

    def split_dataset(split, limit, shuffle):
        if fusion in OBJECT_FUSIONS:  # notebook 06: the detector runs once per scene
            from mmcourse.data import objects  # noqa: PLC0415

            tokens, token_ids, labels, seconds = objects.split_features(task, level, split,
                                                                        root, limit)
            extract_seconds.append(seconds)
            return objects.dataset_from_tokens(tokens, token_ids, labels, batch_size,
                                               shuffle, seed), len(labels)
        if limit is None:
            size = len(data.load_records(task, level, split, root=root))
            return pipeline.make_dataset(task=task, level=level, split=split,
                                         batch_size=batch_size, shuffle=shuffle, seed=seed,
                                         root=root), size
        images, token_ids, labels = load_split(task, level, split, root=root, limit=limit)
        return pipeline.dataset_from_arrays(images, token_ids, labels, batch_size=batch_size,
                                            shuffle=shuffle, seed=seed), len(labels)

    train, train_examples = split_dataset("train", train_size, True)
    val = split_dataset("val", test_size, False)[0] if validate else None
    test, test_examples = split_dataset("test", test_size, False)
    return train, val, test, train_examples, test_examples, sum(extract_seconds)


def train(task: str = "match", fusion: str = "concat", level: str = "attributes",
          epochs: int | None = None, seed: int = 0, root=None, *,
          strategy: str = "default", run_dir=None, resume: bool = False,
          patience: int | None = None, schedule=None,
          batch_size: int | None = None, learning_rate: float | None = None,
          train_size: int | None = None, test_size: int | None = None,
          validate: bool = True, callbacks: list | None = None,
          log: Callable[[str], None] | None = log_to_stderr, keep_model: bool = False,
          model_options: dict | None = None, save=None) -> dict:
    """Train ``fusion`` on ``task``/``level`` and evaluate on the test split.

    Deterministic under ``seed`` on a given machine: ``seed_everything(seed)`` (which
    turns on TensorFlow op determinism), seeded shuffling and deterministic pipelines.
    ``train_size``/``test_size`` keep the first N examples of each split (for quick runs);
    ``callbacks`` go to ``fit``; ``model_options`` to ``build_model``. ``train_seconds``
    is the wall time of ``fit`` alone (validation included when ``validate``).
    ``epochs``, ``batch_size`` and ``learning_rate`` default (None) to ``DEFAULT_EPOCHS``,
    ``BATCH_SIZE`` and ``LEARNING_RATE``, or the model's ``FUSION_DEFAULTS``.

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
    (and, for qa, its answer words): ``models.raw_input_model``, which takes raw images and
    texts, loads with ``safe_mode=True`` and exports with ``python -m mmcourse export``. The
    result's ``saved`` is that path (or None).
    """
    _check_names(task, fusion, level)
    defaults = {"epochs": DEFAULT_EPOCHS[level], "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE, **FUSION_DEFAULTS.get(fusion, {})}
    epochs = defaults["epochs"] if epochs is None else epochs
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    learning_rate = defaults["learning_rate"] if learning_rate is None else learning_rate
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
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
    if batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} (the global batch) must be divisible by "
                         f"the {replicas} replicas of strategy {strategy!r}")

    import keras  # noqa: PLC0415

    from mmcourse.data import scenes as data
    from mmcourse.data import text  # noqa: PLC0415
    from mmcourse.matcher import model as models
    from mmcourse.matcher.model import (  # noqa: PLC0415
        RELATIONAL_FUSIONS,
        build_model,
        check_inputs,
    )
    from mmcourse.seeding import seed_everything  # noqa: PLC0415
    from mmcourse.train import callbacks as course_callbacks  # noqa: PLC0415

    root = data.ensure_data(root)
    seed_everything(seed)
    train_data, val_data, test_data, train_examples, test_examples, extract_seconds = _datasets(
        task, level, seed, root, batch_size, train_size, test_size, validate, fusion)
    if schedule is None and fusion in (*RELATIONAL_FUSIONS, "objects"):
        schedule = course_callbacks.cosine_schedule(learning_rate, epochs, min(1, epochs - 1),
                                                    final_fraction=0.02)
    if strategy == "multiworker":  # each worker reads its share of every global batch
        import tensorflow as tf  # noqa: PLC0415

        shard = tf.data.Options()
        shard.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data, test_data = train_data.with_options(shard), test_data.with_options(shard)
        val_data = val_data.with_options(shard) if val_data is not None else None
    options = {"vocabulary_size": len(text.load_vocabulary(root)),
               "learning_rate": learning_rate, "root": root, **(model_options or {})}
    with strategy_object.scope():
        model = build_model(task, fusion, **options)
    distribute.prepare_model(model, train_data, strategy_object)
    (image_batch, token_batch), _ = next(iter(train_data.take(1)))
    check_inputs(model, image_batch, token_batch)  # a clear error before fit's traceback

    def log_epoch(epoch, logs):
        metrics = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
        log(f"[{task}/{fusion}/{level}] epoch {epoch + 1}/{epochs}  {metrics}")

    log(f"training {task}/{fusion} on {level}: {model.count_params():,} parameters, "
        f"{epochs} epochs, seed {seed}, strategy {strategy} ({replicas} replicas)")
    all_callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=log_epoch),
                     *(callbacks or [])]
    worker_dir = distribute.worker_dir(run_dir) if run_dir is not None else None
    start = time.perf_counter()
    fitted = course_callbacks.fit(model, train_data, val_data, epochs=epochs,
                                  run_dir=worker_dir, resume=resume, patience=patience,
                                  monitor="val_loss" if val_data is not None else "loss",
                                  schedule=schedule, progress=True, callbacks=all_callbacks)
    train_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    test_records = data.load_records(task, level, "test", root=root)[:test_examples]
    by_type = accuracy_by_type(model.predict(test_data, verbose=0),
                               [record["label"] for record in test_records],
                               [record["kind"] for record in test_records])
    epochs_run = fitted["epochs_run"]
    if worker_dir is not None:
        model.save(Path(worker_dir) / "model.keras")
    if save is not None:
        raw_model = models.raw_input_model(
            model, text.load_vocabulary(root), text.saved_sequence_length(root, level),
            answers=text.answer_vocabulary(root) if task == "qa" else None)
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        raw_model.save(save)
        log(f"saved {save}: it takes raw images and texts, the vocabulary"
            f"{' and the answer words' if task == 'qa' else ''} inside")
    result = {
        "task": task, "fusion": fusion, "level": level,
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "accuracy_by_type": by_type,
        "params": int(model.count_params()), "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(epochs_run, 1), "epochs_run": epochs_run,
        "seed": seed, "batch_size": batch_size, "learning_rate": learning_rate,
        "train_examples": train_examples, "test_examples": test_examples,
        "history": fitted["history"],
        "strategy": strategy, "replicas": replicas, "initial_epoch": fitted["initial_epoch"],
        "stopped_early": fitted["stopped_early"],
        "weights_sha256": distribute.weights_fingerprint(model),
        "saved": None if save is None else str(save),
        "extract_seconds": extract_seconds,
    }
    log(f"[{task}/{fusion}/{level}] test accuracy {test_accuracy:.4f} after {epochs_run} "
        f"epochs in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result


def main(args) -> int:
    """``python -m mmcourse train``: exit 0 on success, 2 on unknown names or bad
    arguments (the valid names go to stderr). Introduced in notebook 04; ``--task
    retrieval`` (``mmcourse.clip.train_clip``) in notebook 07; ``--task caption``
    (``mmcourse.train.vlm.train_captioner``) and ``--task vqa``
    (``mmcourse.train.vlm.train_vqa``) in notebook 08."""
    if args.task == "retrieval":
        return _main_retrieval(args)
    if args.task == "caption":
        return _main_caption(args)
    if args.task == "vqa":
        return _main_vqa(args)
    try:
        _check_names(args.task, args.fusion, args.level)
        if args.epochs is not None and args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    extra = {name: getattr(args, name) for name in (
        "strategy", "run_dir", "resume", "patience", "batch_size", "train_size", "test_size",
        "save") if getattr(args, name, None) is not None}
    try:
        result = train(task=args.task, fusion=args.fusion, level=args.level,
                       epochs=args.epochs, seed=args.seed, root=args.root, **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['task']}/{result['fusion']} on {result['level']}: test accuracy "
              f"{result['test_accuracy']:.4f}, {result['params']:,} parameters, "
              f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s "
              f"({result['seconds_per_epoch']:.2f} s/epoch)")
        _print_accuracy_by_type(result["accuracy_by_type"])
    return 0 if math.isfinite(result["test_loss"]) else 1


def _print_accuracy_by_type(by_type: dict) -> None:
    """One line: each question kind's accuracy (``accuracy_by_type``), kinds without
    questions left out."""
    print("accuracy by type: " + ", ".join(
        f"{kind} {value:.3f}" for kind, value in by_type.items() if value is not None))


def _train_and_save(args, train_function, *arguments, **options):
    """Run ``train_function`` with the command line's --batch-size and --train-size, save its
    model in --run-dir and print the JSON with --json. Returns the result dict for the
    caller to print, or an exit status (0 after --json, 2 on a bad argument)."""
    extra = {name: getattr(args, name) for name in ("batch_size", "train_size")
             if getattr(args, name, None) is not None}
    try:
        result = train_function(*arguments, keep_model=args.run_dir is not None, **options,
                                **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.run_dir is not None:
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
        result.pop("model").save(Path(args.run_dir) / "model.keras")
    if args.json:
        print(json.dumps(result))
        return 0
    return result


def _main_retrieval(args) -> int:
    """``train --task retrieval``: CLIP on the retrieval pairs (``mmcourse.clip``); with
    ``--arch keras_hub_clip`` KerasHub's CLIP, same loss and scores (``mmcourse.hub.clip``,
    notebook 11)."""
    if args.arch == "keras_hub_clip":
        from mmcourse.hub import clip as hub_clip  # noqa: PLC0415

        result = _train_and_save(args, hub_clip.train_hub_clip, args.level, args.epochs,
                                 args.seed, args.root, log=log_to_stderr)
    else:
        from mmcourse import clip  # noqa: PLC0415

        result = _train_and_save(args, clip.train_clip, args.level, args.epochs, args.seed,
                                 args.root)
    if not isinstance(result, dict):
        return result
    recall = {k: result[k] for k in ("recall_at_1", "recall_at_5")}
    print(f"retrieval{'/' + result['arch'] if 'arch' in result else ''} on {result['level']}: "
          f"{result['params']:,} parameters, "
          f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s; "
          f"{result['retrieval_pairs']} test pairs ({result['hit_rule']})")
    for k, values in recall.items():
        print(f"  {k}: image->text {values['image_to_text']:.3f}, "
              f"text->image {values['text_to_image']:.3f}")
    if result["zero_shot_accuracy"] is not None:
        print(f"  zero-shot accuracy over {result['zero_shot_classes']} prompts: seen "
              f"{result['zero_shot_accuracy']:.3f}, held-out combinations "
              f"{result['zero_shot_heldout_accuracy']:.3f} (chance {result['chance']:.3f})")
    return 0


def _main_hub_caption(args) -> int:
    """``train --task caption --arch paligemma``: KerasHub's tiny PaliGemma
    (``mmcourse.train.hub``, notebook 11); ``--run-dir`` keeps it as a preset folder."""
    from mmcourse.hub import presets as hub_presets
    from mmcourse.train import hub as hub_training  # noqa: PLC0415

    extra = {name: getattr(args, name) for name in ("batch_size", "train_size")
             if getattr(args, name, None) is not None}
    try:
        result = hub_training.train_paligemma_captioner(
            args.level, args.seed, args.root, epochs=args.epochs, log=log_to_stderr,
            keep_model=args.run_dir is not None, **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.run_dir is not None:
        hub_presets.save_preset(result.pop("model"), Path(args.run_dir) / "tiny_paligemma")
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"caption/paligemma on {result['level']}: exact match {result['exact_match']:.3f}, "
          f"correct statements {result['correct_statements']:.3f}, token accuracy "
          f"{result['token_accuracy']:.3f}; {result['params']:,} parameters, "
          f"{result['epochs']} epochs in {result['train_seconds']:.0f} s")
    for sample in result["samples"]:
        print(f"  {sample['reference']!r} -> {sample['generated']!r}")
    return 0


def _main_caption(args) -> int:
    """``train --task caption``: an image captioner (``mmcourse.train.vlm.train_captioner``)."""
    from mmcourse.train import vlm  # noqa: PLC0415

    if args.arch == "paligemma":
        return _main_hub_caption(args)
    result = _train_and_save(args, vlm.train_captioner, args.level, args.arch or "llava",
                             args.seed, args.root, log=log_to_stderr)
    if not isinstance(result, dict):
        return result
    print(f"caption/{result['arch']} on {result['level']}: exact match "
          f"{result['exact_match']:.3f}, correct statements {result['correct_statements']:.3f}, "
          f"token accuracy {result['token_accuracy']:.3f}; {result['params']:,} parameters "
          f"({result['trainable_params']:,} trainable in stage 2), "
          f"{result['train_seconds']:.0f} s")
    for sample in result["samples"]:
        print(f"  {sample['reference']!r} -> {sample['generated']!r}")
    return 0


def _main_vqa(args) -> int:
    """``train --task vqa``: answers written by a VLM (``mmcourse.train.vlm.train_vqa``)."""
    from mmcourse.train import vlm  # noqa: PLC0415

    result = _train_and_save(args, vlm.train_vqa, args.level, args.arch or "llava", args.seed,
                             args.root, log=log_to_stderr)
    if not isinstance(result, dict):
        return result
    print(f"vqa/{result['arch']} on {result['level']}: accuracy {result['accuracy']:.3f}; "
          f"{result['params']:,} parameters ({result['trainable_params']:,} trainable in "
          f"stage 2), {result['train_seconds']:.0f} s")
    _print_accuracy_by_type(result["accuracy_by_type"])
    for sample in result["samples"]:
        print(f"  {sample['question']!r} -> {sample['generated']!r} (reference "
              f"{sample['answer']!r})")
    return 0
