"""Training the toy multimodal language model of ``mmcourse.vlm`` (notebook 08): an image
captioner (``train_captioner``, ``python -m mmcourse train --task caption``) and VQA by
generation (``train_vqa``, ``--task vqa``).

Both train a CLIP (``mmcourse.train.clip.train_clip``) whose frozen ViT gives the visual tokens,
pre-train the decoder as a language model (``caption_backbone`` does these two steps once
for both architectures), then stage 1 (the new layers) and stage 2 (LLaVA: with the decoder;
Flamingo: the new layers on), scored after each (``caption_metrics``, ``vqa_metrics``).
``GateTrace`` records Flamingo's gates during training; ``question_only_accuracy`` is the
baseline that never looks at the image.

Like ``mmcourse.vlm``, this module imports Keras at module level (``GateTrace`` is a Keras
callback).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmcourse import stats
from mmcourse.configs import positive_int
from mmcourse.data import scenes as data
from mmcourse.data import store, text
from mmcourse.data.captions import correct_statements
from mmcourse.train.core import TrainConfig, fit_logged
from mmcourse.vlm import (
    GatedCrossAttention,
    build_decoder,
    build_vlm,
    decoder_vocabulary,
    encode_texts,
    generate,
    on_vision_tokens,
    vision_tokens,
)
from mmcourse.vlm.model import check_arch

CAPTION_LENGTHS = {"attributes": 8, "relations": 14}
#: Epochs of each step of ``train_captioner``.
CAPTION_EPOCHS = {"clip": 25, "pretrain": 10, "stage1": 5, "stage2": 10}
#: Adam's learning rate in each step of ``train_captioner`` (``LEARNING_RATES``) and
#: ``train_vqa`` (``VQA_LEARNING_RATES``).
LEARNING_RATES = {"pretrain": 3e-3, "stage1": 3e-3, "stage2": 1e-3}
VQA_LEARNING_RATES = {**LEARNING_RATES, "stage2": 3e-3}
#: Token ids per VQA text: "[START]", a question (at most 10 words), its one-word answer,
#: "[END]".
VQA_LENGTH = 13
#: Epochs of each step of ``train_vqa``.
VQA_EPOCHS = {"clip": 25, "pretrain": 3, "stage1": 2, "stage2": 10}


def encode_answers(questions, answers, vocabulary, length: int = VQA_LENGTH):
    """A VQA training text per question, "[START] question answer [END]", and its loss
    weights: (token ids int32 (N, length), weights float32 (N, length - 1) of the targets
    ``ids[:, 1:]``), 1 on the answer's words and "[END]", 0 on the question and the padding,
    so that the model learns to answer, not to ask. Introduced in notebook 08."""
    if isinstance(questions, str) or isinstance(answers, str):
        raise TypeError("questions and answers must be lists of strings, got a str: wrap it "
                        "as [text]")
    questions, answers = list(questions), list(answers)
    if len(questions) != len(answers):
        raise ValueError(f"questions and answers must have the same length, got "
                         f"{len(questions)} and {len(answers)}")
    ids = encode_texts([f"{q} {a}" for q, a in zip(questions, answers, strict=True)],
                       vocabulary, length)
    asked = np.array([len(text.split_words(q)) for q in questions]).reshape(-1, 1)
    weights = (np.arange(length - 1) >= asked) & (ids[:, 1:] != 0)
    return ids, weights.astype(np.float32)


class GateTrace(keras.callbacks.Callback):
    """Records tanh(alpha) and tanh(alpha_ff) of every ``GatedCrossAttention`` of the model
    being fitted, before training and after every batch: ``gates`` maps a layer's name to a
    list of (tanh(alpha), tanh(alpha_ff)) pairs. One instance may follow several ``fit``
    calls (the stages of ``train_captioner``); ``stage_starts`` holds the index in each list
    at which each call began. Introduced in notebook 08."""

    def __init__(self):
        super().__init__()
        self.gates: dict[str, list[tuple[float, float]]] = {}
        self.stage_starts: list[int] = []

    def _layers(self):
        return [layer for layer in self.model.layers if isinstance(layer, GatedCrossAttention)]

    def _record(self):
        for layer in self._layers():
            self.gates.setdefault(layer.name, []).append(
                (float(np.tanh(ops.convert_to_numpy(layer.alpha))),
                 float(np.tanh(ops.convert_to_numpy(layer.alpha_ff)))))

    def on_train_begin(self, logs=None):
        if not self._layers():
            raise ValueError(f"GateTrace needs a model with GatedCrossAttention layers "
                             f"(build_vlm(..., arch='flamingo')), got {self.model.name!r}")
        if not self.gates:
            self._record()
        self.stage_starts.append(len(next(iter(self.gates.values()))) - 1)

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def _fit_stage(model, trainable, inputs, targets, weights, config, *, name, log, tokens=None,
               callbacks=None):
    """Fit ``model`` under ``config`` (``fit_logged``: one ``log`` line per epoch, tagged
    ``name``) with only the layers named in ``trainable`` trainable, on ``inputs`` (token
    ids (N, L), or with ``tokens`` (rows (N,), token ids): each example's vision tokens
    ``tokens[rows]``, gathered per batch) and per-target loss ``weights``; (seconds,
    trainable parameter count, final loss)."""
    import tensorflow as tf  # noqa: PLC0415

    for layer in model.layers:
        layer.trainable = layer.name in trainable
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras.utils.set_random_seed(config.seed)  # before the dataset: its shuffle reads it
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weights)).shuffle(
        len(targets), seed=config.seed).batch(config.batch_size)
    if tokens is not None:
        table = tf.constant(tokens)
        dataset = dataset.map(lambda x, y, w: ((tf.gather(table, x[0]), x[1]), y, w))
    fitted = fit_logged(model, dataset.prefetch(2), config, name=name, log=log,
                        callbacks=callbacks)
    trainable_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return fitted["train_seconds"], trainable_params, fitted["history"]["loss"][-1]


def _check_run(level, epochs, defaults) -> dict:
    """Checks the level; returns ``defaults`` updated with ``epochs``, each a positive
    int."""
    if level not in CAPTION_LENGTHS:
        raise ValueError(f"level must be one of {tuple(CAPTION_LENGTHS)}, got {level!r}")
    epochs = {**defaults, **(epochs or {})}
    for step, value in epochs.items():
        if step not in defaults:
            raise ValueError(f"epochs: unknown step {step!r}; steps: {tuple(defaults)}")
        positive_int(f"epochs[{step!r}]", value)
    return epochs


def _backbone(task, level, seed, root, *, vocabulary, epochs, batch_size, train_size, log,
              clip_model, pretrain_ids, max_length, coordinates=False, learning_rates=None):
    """The steps before the stages, which do not depend on the architecture: a CLIP (or
    ``clip_model``) whose frozen ViT gives ``"vision"`` (``vision_tokens``), and the
    ``"decoder"`` pre-trained as a language model on ``pretrain_ids``."""
    from mmcourse.train import clip as clip_training  # noqa: PLC0415

    log = log or (lambda message: None)
    rates = learning_rates or LEARNING_RATES
    seconds = {}
    if clip_model is None:
        log(f"[{task}/{level}] CLIP for the visual tokens, {epochs['clip']} epochs")
        clip_run = clip_training.train_clip(level, epochs["clip"], seed, root, heldout=(),
                                   train_size=train_size, keep_model=True)
        clip_model, seconds["clip"] = clip_run["model"], clip_run["train_seconds"]
    decoder = build_decoder(len(vocabulary), max_length=max_length)
    seconds["pretrain"], _, loss = _fit_stage(
        decoder, {layer.name for layer in decoder.layers}, pretrain_ids[:, :-1],
        pretrain_ids[:, 1:], (pretrain_ids[:, 1:] != 0).astype("float32"),
        TrainConfig(epochs["pretrain"], batch_size, rates["pretrain"], seed),
        name=f"{task}/{level} pretrain", log=log)
    log(f"[{task}/{level}] decoder pre-trained, loss {loss:.3f}")
    return {"level": level, "seed": seed, "train_size": len(pretrain_ids),
            "epochs": {k: epochs[k] for k in ("clip", "pretrain")},
            "vision": vision_tokens(clip_model, coordinates=coordinates), "decoder": decoder,
            "seconds": seconds}


def _train_stages(task, backbone, arch, seed, *, epochs, batch_size, log, images, rows, ids,
                  weights, evaluate, learning_rates=None, callbacks=None):
    """Stage 1 and stage 2 of a ``build_vlm`` model on a copy of ``backbone``'s decoder, on
    ``ids`` (row i's image is ``images[rows[i]]``) with loss ``weights``; ``evaluate(model)``
    (a dict of metrics) after each. Returns (model, seconds per step, stages)."""
    log = log or (lambda message: None)
    rates = learning_rates or LEARNING_RATES
    tag = f"[{task}/{backbone['level']}/{arch}]"
    seconds = dict(backbone["seconds"])
    decoder = keras.models.clone_model(backbone["decoder"])  # the backbone stays as it was
    decoder.set_weights(backbone["decoder"].get_weights())
    vision = backbone["vision"]
    model = build_vlm(decoder, vision, arch)
    new = {"projector"} | {layer.name for layer in model.layers
                           if layer.name.startswith("gated_cross")}
    decoder_layers = {layer.name for layer in decoder.layers} - {"token_ids"}
    stage2 = new | decoder_layers if arch == "llava" else new
    tokens = np.asarray(vision.predict(np.asarray(images) / 255.0, batch_size=256, verbose=0))
    on_tokens = on_vision_tokens(model)
    stages = {}
    for stage, trainable in (("stage1", new), ("stage2", stage2)):
        seconds[stage], trainable_params, loss = _fit_stage(
            on_tokens, trainable, (np.asarray(rows, np.int32), ids[:, :-1]), ids[:, 1:],
            weights, TrainConfig(epochs[stage], batch_size, rates[stage], seed + int(stage[-1])),
            name=f"{tag[1:-1]} {stage}", log=log, tokens=tokens, callbacks=callbacks)
        stages[stage] = {**evaluate(model), "train_loss": loss,
                         "trainable_params": trainable_params, "seconds": seconds[stage]}
        log(f"{tag} after {stage}: " + ", ".join(
            f"{key} {value:.3f}" for key, value in stages[stage].items()
            if isinstance(value, float) and key != "seconds"))
    return model, seconds, stages


def caption_metrics(model, images, captions, scenes, vocabulary, length: int) -> dict:
    """How well ``model`` captions ``images``: ``exact_match`` (greedy caption == reference),
    ``correct_statements`` (the caption is true of the scene, whatever its wording) and
    ``token_accuracy`` (next-token accuracy with the reference as input, padding excluded).
    Introduced in notebook 08."""
    generated = generate(model, images, max_length=length, vocabulary=vocabulary)
    ids = encode_texts(captions, vocabulary, length)
    logits = model.predict([np.asarray(images) / 255.0, ids[:, :-1]], batch_size=256,
                           verbose=0)
    real = ids[:, 1:] != 0
    return {"exact_match": float(np.mean([g == " ".join(text.split_words(c))
                                          for g, c in zip(generated, captions, strict=True)])),
            "correct_statements": correct_statements(generated, scenes),
            "token_accuracy": float((logits.argmax(-1) == ids[:, 1:])[real].mean()),
            "generated": generated}


def _caption_data(level, root, train_size):
    """``level``'s training images, their caption ids and the decoder vocabulary."""
    vocabulary = decoder_vocabulary(root)
    images, captions, _ = data.load_arrays("retrieval", level, "train", root=root)
    if train_size is not None:
        train_size = positive_int("train_size", train_size)
        images, captions = images[:train_size], captions[:train_size]
    return images, encode_texts(captions, vocabulary, CAPTION_LENGTHS[level]), vocabulary


def caption_backbone(level: str = "attributes", seed: int = 0, root=None, *,
                     epochs: dict | None = None, batch_size: int = 64,
                     train_size: int | None = None, log=None) -> dict:
    """Steps 1 and 2 of ``train_captioner``, which do not depend on the architecture: a CLIP
    trained on ``level``'s retrieval pairs (``mmcourse.train.clip.train_clip``, every colour-shape
    combination), whose ViT gives the frozen ``"vision"`` (``vision_tokens``), and the text
    ``"decoder"`` pre-trained as a language model on the training captions. Pass the dict to
    ``train_captioner(..., backbone=...)`` to train several architectures on the same frozen
    parts (it copies the decoder, so the dict stays unchanged). ``"seconds"`` holds the
    fitting time of each step. Introduced in notebook 08."""
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    epochs = _check_run(level, epochs, CAPTION_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    images, ids, vocabulary = _caption_data(level, root, train_size)
    return _backbone("caption", level, seed, root, vocabulary=vocabulary, epochs=epochs,
                     batch_size=batch_size, train_size=train_size, log=log, clip_model=None,
                     pretrain_ids=ids, max_length=CAPTION_LENGTHS[level])


def train_captioner(level: str = "attributes", arch: str = "llava", seed: int = 0, root=None,
                    *, epochs: dict | None = None, batch_size: int = 64,
                    train_size: int | None = None, log=None, keep_model: bool = False,
                    clip_model=None, backbone: dict | None = None,
                    callbacks: list | None = None) -> dict:
    """Train an image captioner on ``level``'s retrieval captions and score it on the test
    split (``python -m mmcourse train --task caption``):

    1. a CLIP (``mmcourse.train.clip.train_clip``, every colour-shape combination) whose ViT,
       frozen, supplies the visual tokens (or the given trained ``clip_model``);
    2. the decoder pre-trained as a language model on the training captions;
    3. stage 1: ``arch="llava"`` trains the projector alone, ``"flamingo"`` the projector
       and the gated cross-attention layers, the decoder frozen in both;
    4. stage 2: ``"llava"`` fine-tunes the projector and the decoder together;
       ``"flamingo"`` keeps the decoder frozen and trains its new layers on.

    ``backbone`` (``caption_backbone``, same level, seed and train size) supplies steps 1
    and 2 instead of training them; ``callbacks`` (e.g. ``GateTrace``) follow stages 1 and 2,
    which train on the vision tokens computed once per image (``on_vision_tokens``); ``log``
    gets a line per epoch of each step (``train.core.fit_logged``) and the scores after each.
    ``epochs`` overrides ``CAPTION_EPOCHS``. The metrics (``caption_metrics``) are reported
    after each stage; the top level holds those after stage 2, ``train_seconds`` the whole
    pipeline's fitting time (a shared backbone's counted in full). Introduced in notebook 08.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    check_arch(arch)
    epochs = _check_run(level, epochs, CAPTION_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    images, ids, vocabulary = _caption_data(level, root, train_size)
    if backbone is not None and clip_model is not None:
        raise ValueError("pass clip_model or backbone, not both: a backbone holds its CLIP")
    if backbone is None:
        backbone = _backbone("caption", level, seed, root, vocabulary=vocabulary,
                             epochs=epochs, batch_size=batch_size, train_size=train_size,
                             log=log, clip_model=clip_model, pretrain_ids=ids,
                             max_length=CAPTION_LENGTHS[level])
    elif (backbone.get("level"), backbone.get("seed"), backbone.get("train_size")) != (
            level, seed, len(images)):
        raise ValueError(f"backbone was trained for level {backbone.get('level')!r}, seed "
                         f"{backbone.get('seed')}, {backbone.get('train_size')} examples; "
                         f"this run needs {level!r}, seed {seed}, {len(images)} examples")
    length = CAPTION_LENGTHS[level]
    test_images, test_captions, _ = data.load_arrays("retrieval", level, "test", root=root)
    test_scenes = data.load_records("scenes", level, "test", root=root)
    last = {}

    def evaluate(model):
        last.update(caption_metrics(model, test_images, test_captions, test_scenes,
                                    vocabulary, length))
        return {k: last[k] for k in ("exact_match", "correct_statements", "token_accuracy")}

    model, seconds, stages = _train_stages(
        "caption", backbone, arch, seed, epochs=epochs, batch_size=batch_size, log=log,
        images=images, rows=np.arange(len(ids)), ids=ids,
        weights=(ids[:, 1:] != 0).astype(np.float32), evaluate=evaluate, callbacks=callbacks)
    result = {"task": "caption", "level": level, "arch": arch,
              **{k: stages["stage2"][k] for k in ("exact_match", "correct_statements",
                                                  "token_accuracy")},
              **_run_summary(model, seconds, stages, {**epochs, **backbone["epochs"]}, seed),
              "train_examples": len(images), "test_examples": len(test_images),
              "samples": [{"reference": c, "generated": g} for c, g in
                          list(zip(test_captions, last["generated"], strict=True))[:5]]}
    if keep_model:
        result["model"] = model
    return result


def _run_summary(model, seconds, stages, epochs, seed) -> dict:
    """The keys the captioner's and VQA's results share."""
    return {"params": int(model.count_params()),
            "trainable_params": stages["stage2"]["trainable_params"],
            "train_seconds": float(sum(seconds.values())), "seconds": seconds,
            "stages": stages, "epochs": epochs, "seed": seed}


def question_only_accuracy(train_records, test_records) -> dict:
    """The baseline that never looks at the image: each test question (a qa record of
    ``mmcourse.data.scenes``, with "text", "answer" and "kind") gets the commonest answer to the same
    question text in ``train_records`` (ties: the answer seen first), and no answer when the
    text is new. Returns ``stats.accuracy_by_type`` by question kind. Introduced in notebook
    08."""
    from collections import Counter  # noqa: PLC0415

    answers_to: dict[str, Counter] = {}
    for record in train_records:
        answers_to.setdefault(record["text"], Counter())[record["answer"]] += 1
    commonest = {text: counts.most_common(1)[0][0] for text, counts in answers_to.items()}
    correct = np.array([commonest.get(r["text"]) == r["answer"] for r in test_records],
                       np.float32)
    return stats.accuracy_by_type(correct, np.ones_like(correct),
                                  [r["kind"] for r in test_records])


def vqa_metrics(model, images, questions, answers, kinds, vocabulary,
                length: int = VQA_LENGTH, batch_size: int = 1000) -> dict:
    """How well ``model`` answers: each question (row i about ``images[i]``) is the prompt
    of greedy decoding (``generate``, the room left in ``length`` tokens), and the generated
    text counts when it equals the reference answer after ``text.standardize``. Returns
    ``accuracy``, ``accuracy_by_type`` (``mmcourse.stats.accuracy_by_type`` by question
    ``kinds``: relational, non_relational and each kind) and ``generated``.
    Introduced in notebook 08."""
    if isinstance(questions, str) or isinstance(answers, str):
        raise TypeError("questions and answers must be lists of strings, got a str: wrap it "
                        "as [text]")
    questions, answers, kinds = list(questions), list(answers), list(kinds)
    images = np.asarray(images)
    if not questions or not len(images) == len(questions) == len(answers) == len(kinds):
        raise ValueError(f"images, questions, answers and kinds must be non-empty and of the "
                         f"same length, got {len(images)}, {len(questions)}, {len(answers)} "
                         f"and {len(kinds)}")
    asked = np.array([len(text.split_words(q)) for q in questions])
    generated = [""] * len(questions)
    for words in np.unique(asked):  # generate() needs prompts of one length
        rows = np.flatnonzero(asked == words)
        for chunk in range(0, len(rows), batch_size):
            part = rows[chunk:chunk + batch_size]
            texts = generate(model, images[part], [questions[i] for i in part],
                             max_length=length - 1 - int(words), vocabulary=vocabulary)
            for row, answer in zip(part, texts, strict=True):
                generated[row] = answer
    correct = np.array([text.standardize(g) == text.standardize(a)
                        for g, a in zip(generated, answers, strict=True)], np.float32)
    return {"accuracy": float(correct.mean()),
            "accuracy_by_type": stats.accuracy_by_type(correct, np.ones_like(correct), kinds),
            "generated": generated}


def train_vqa(level: str = "relations", arch: str = "llava", seed: int = 0, root=None, *,
              epochs: dict | None = None, batch_size: int = 64,
              train_size: int | None = None, test_size: int | None = None, log=None,
              keep_model: bool = False, clip_model=None, coordinates: bool = True) -> dict:
    """Visual question answering by generation (``python -m mmcourse train --task vqa``):
    the model reads the image (LLaVA's prefix or Flamingo's cross-attention) and the
    question as its prompt, and writes the answer.

    The steps are ``train_captioner``'s (a CLIP, or ``clip_model``; the decoder pre-trained;
    stage 1; stage 2), with ``VQA_EPOCHS``, except that the decoder is pre-trained on the
    training captions and the question-answer texts, and the stages train on
    "[START] question answer [END]" (``encode_answers``) with the loss on the answer and
    "[END]" only. With ``coordinates`` the vision tokens carry their patch's position
    (``GridCoordinates``): the CLIP of the relations level is trained on left-to-right
    captions and keeps little of where things are, which questions of height and distance
    need. Scores on the test split (the first ``test_size`` questions): ``accuracy``
    and ``accuracy_by_type`` (``vqa_metrics``) after each stage and at the top level after
    stage 2, plus ``samples``, one question of each kind. ``train_size`` keeps the first N
    training questions and the first N scenes for the CLIP. Introduced in notebook 08.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    check_arch(arch)
    epochs = _check_run(level, epochs, VQA_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    vocabulary = decoder_vocabulary(root)

    def split(name, size):
        images, _, scene_ids = data.load_arrays("retrieval", level, name, root=root)
        records = data.load_records("qa", level, name, root=root)
        if size is not None:
            records = records[:positive_int(f"{name}_size", size)]
        assert np.array_equal(scene_ids, np.arange(len(images)))  # scene i is image i
        return images, records, [[r[key] for r in records] for key in (
            "scene", "text", "answer", "kind")]

    images, _, (rows, questions, answers, _) = split("train", train_size)
    test_images, _, (test_rows, test_questions, test_answers, test_kinds) = split(
        "test", test_size)
    ids, weights = encode_answers(questions, answers, vocabulary)
    captions = data.load_arrays("retrieval", level, "train", root=root)[1][:train_size]
    pretrain_ids = encode_texts(captions + [f"{q} {a}" for q, a in zip(
        questions, answers, strict=True)], vocabulary, max(CAPTION_LENGTHS[level], VQA_LENGTH))
    last = {}

    def evaluate(model):
        last.update(vqa_metrics(model, test_images[test_rows], test_questions, test_answers,
                                test_kinds, vocabulary))
        return {"accuracy": last["accuracy"], "accuracy_by_type": last["accuracy_by_type"]}

    backbone = _backbone("vqa", level, seed, root, vocabulary=vocabulary, epochs=epochs,
                         batch_size=batch_size, train_size=train_size, log=log,
                         clip_model=clip_model, pretrain_ids=pretrain_ids,
                         max_length=max(pretrain_ids.shape[1], ids.shape[1]),
                         coordinates=coordinates, learning_rates=VQA_LEARNING_RATES)
    model, seconds, stages = _train_stages(
        "vqa", backbone, arch, seed, epochs=epochs, batch_size=batch_size, log=log,
        images=images[:max(rows) + 1], rows=rows, ids=ids, weights=weights,
        evaluate=evaluate, learning_rates=VQA_LEARNING_RATES)
    first = {kind: test_kinds.index(kind) for kind in sorted(set(test_kinds))}
    result = {"task": "vqa", "level": level, "arch": arch,
              "accuracy": last["accuracy"], "accuracy_by_type": last["accuracy_by_type"],
              **_run_summary(model, seconds, stages, epochs, seed),
              "learning_rates": VQA_LEARNING_RATES, "batch_size": batch_size,
              "coordinates": coordinates, "train_examples": len(ids),
              "test_examples": len(test_questions),
              "samples": [{"kind": kind, "question": test_questions[i],
                           "answer": test_answers[i], "generated": last["generated"][i]}
                          for kind, i in first.items()]}
    if keep_model:
        result["model"] = model
    return result
