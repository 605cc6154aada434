"""The tiny KerasHub PaliGemma trained on the course's captions and scored like notebook 08's
captioners (notebook 11; ``python -m mmcourse train --task caption --arch paligemma``).

The captions are tokenized once (``caption_inputs``), and ``fit_captioner`` fits on the
token arrays with the model's preprocessor set aside, so tf.data never re-runs SentencePiece
inside its graph. ``caption_scores`` reports notebook 08's keys: ``exact_match``,
``correct_statements`` (notebook 08's caption parser, so a reworded true caption counts) and
``token_accuracy`` (next-token accuracy on the response, reference as input).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmcourse import vlm
from mmcourse.configs import is_int
from mmcourse.data import scenes as data
from mmcourse.data import store, text
from mmcourse.hub import presets as hub_presets
from mmcourse.train.core import TrainConfig, fit_logged
from mmcourse.train.tokenizer import train_tokenizer

#: Training of ``train_paligemma_captioner`` unless told otherwise: ``vision_epochs`` of
#: ``pretrain_vision`` first, then ``epochs`` of captions; ``model_options`` over
#: ``hub_presets.PALIGEMMA_DEFAULTS`` (8 x 8 pixel patches, 64 image tokens).
HUB_CAPTION_DEFAULTS = {"epochs": 40, "batch_size": 32, "learning_rate": 2e-3,
                        "sequence_length": {"attributes": 16, "relations": 32},
                        "vision_epochs": 30, "vision_learning_rate": 2e-3,
                        "model_options": {"vit_patch_size": 8}}


def caption_inputs(model, images, captions, prompt: str = hub_presets.PROMPTS["en"]):
    """``(inputs, labels, sample_weight)`` as NumPy arrays: the model's preprocessor applied
    once to ``images`` (uint8), ``prompt`` and ``captions``. Labels are the next tokens;
    only the response (caption and ``<eos>``) is weighted. Notebook 11."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) != len(captions):
        raise ValueError(f"images must be (N, H, W, 3) with one caption each: images "
                         f"{images.shape}, {len(captions)} captions")
    inputs, labels, weights = model.preprocessor(
        {"images": images, "prompts": [prompt] * len(images), "responses": list(captions)})
    return ({k: np.asarray(v) for k, v in inputs.items()}, np.asarray(labels),
            np.asarray(weights))


def caption_pieces(tokenizer, captions) -> np.ndarray:
    """(N, vocabulary) float32: 1 where a piece occurs in the caption, else 0 (a bag of
    pieces, the targets of ``pretrain_vision``). Notebook 11."""
    targets = np.zeros((len(captions), tokenizer.vocabulary_size()), np.float32)
    for row, caption in enumerate(captions):
        targets[row, np.asarray(tokenizer.tokenize(caption))] = 1.0
    return targets


def pretrain_vision(model, images, captions, *, epochs: int = 5, batch_size: int = 32,
                    learning_rate: float = 2e-3, callbacks: list | None = None):
    """Pre-train the vision tower of a ``PaliGemmaCausalLM`` alone on image-caption pairs,
    as real PaliGemma starts from a pre-trained SigLIP: the maximum of its image tokens goes
    through a linear head that predicts which caption pieces occur (a bag of words, sigmoid
    cross-entropy), then the head is dropped. The maximum, not the mean: one object covers a
    few of the 64 patches, and a mean drowns it in background (SigLIP itself reads its image
    out with a learned attention pooling, not a mean). ``callbacks`` go to Keras' ``fit``.
    Returns the Keras history. Notebook 11."""
    import keras  # noqa: PLC0415

    preprocessor = model.preprocessor
    tokenizer = preprocessor.tokenizer
    pixels = np.asarray(preprocessor.image_converter(np.asarray(images)))
    targets = caption_pieces(tokenizer, captions)
    vit = model.backbone.vit_encoder
    inputs = keras.Input(pixels.shape[1:])
    pooled = keras.layers.GlobalMaxPooling1D()(vit(inputs))
    head = keras.Model(inputs, keras.layers.Dense(targets.shape[1])(pooled))
    head.compile(optimizer=keras.optimizers.Adam(learning_rate),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return head.fit(pixels, targets, epochs=epochs, batch_size=batch_size, shuffle=False,
                    callbacks=callbacks, verbose=0)


def fit_captioner(model, images, captions, *, epochs: int = 1, batch_size: int = 32,
                  learning_rate: float = 2e-3, prompt: str = hub_presets.PROMPTS["en"],
                  callbacks: list | None = None):
    """Fit a ``PaliGemmaCausalLM`` to caption ``images`` with Adam and the cross-entropy of
    the response tokens; greedy decoding afterwards. ``callbacks`` go to Keras' ``fit``.
    Returns the Keras history. The training order is the data's (set a seed for the weights
    with ``tiny_paligemma``). Notebook 11."""
    import keras  # noqa: PLC0415

    inputs, labels, weights = caption_inputs(model, images, captions, prompt)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
                  sampler="greedy")
    preprocessor, model.preprocessor = model.preprocessor, None
    try:
        return model.fit(inputs, labels, sample_weight=weights, epochs=epochs,
                         batch_size=batch_size, shuffle=False, callbacks=callbacks, verbose=0)
    finally:
        model.preprocessor = preprocessor


def generate_captions(model, images, prompt: str = hub_presets.PROMPTS["en"],
                      max_length: int | None = None) -> list[str]:
    """The model's captions of ``images`` (uint8), the prompt stripped. Notebook 11."""
    outputs = model.generate({"images": np.asarray(images),
                              "prompts": [prompt] * len(images)},
                             max_length=max_length, strip_prompt=True)
    return [str(o).strip() for o in outputs]


def _words(caption: str) -> str:
    return " ".join(text.split_words(caption))


def caption_scores(model, images, captions, scenes,
                   prompt: str = hub_presets.PROMPTS["en"]) -> dict:
    """``exact_match``, ``correct_statements`` and ``token_accuracy`` of ``model`` on
    ``images`` with reference ``captions`` and ``scenes`` (their records), plus the
    ``generated`` captions. Notebook 11."""
    generated = generate_captions(model, images, prompt)
    inputs, labels, weights = caption_inputs(model, images, captions, prompt)
    preprocessor, model.preprocessor = model.preprocessor, None
    try:
        logits = model.predict(inputs, batch_size=128, verbose=0)
    finally:
        model.preprocessor = preprocessor
    real = weights > 0
    return {"exact_match": float(np.mean([_words(g) == _words(c)
                                          for g, c in zip(generated, captions, strict=True)])),
            "correct_statements": vlm.correct_statements(generated, scenes),
            "token_accuracy": float((logits.argmax(-1) == labels)[real].mean()),
            "generated": generated}


def _fit_with(function, config: TrainConfig):
    """``fit_logged``'s ``fit``: ``function`` (``pretrain_vision`` or ``fit_captioner``) on
    data (images, captions), with ``config``'s batch size and learning rate."""
    def fit(model, data, *, epochs, callbacks):
        images, captions = data
        return {"history": function(model, images, captions, epochs=epochs,
                                    batch_size=config.batch_size,
                                    learning_rate=config.learning_rate,
                                    callbacks=callbacks).history}
    return fit


def train_paligemma_captioner(level: str = "attributes", seed: int = 0, root=None, *,
                              epochs: int | None = None, batch_size: int | None = None,
                              train_size: int | None = None, tokenizer=None, log=None,
                              keep_model: bool = False, vision_epochs: int | None = None,
                              **options) -> dict:
    """Train the tiny KerasHub PaliGemma (``hub_presets.tiny_paligemma`` with
    ``HUB_CAPTION_DEFAULTS["model_options"]``, overridden by ``options``) on ``level``'s
    training captions, its vision tower pre-trained first (``vision_epochs`` of
    ``pretrain_vision``, counted in ``train_seconds``), and score it on the test split,
    with the keys of ``train.vlm.train_captioner``: ``exact_match``, ``correct_statements``,
    ``token_accuracy``, ``params``, ``train_seconds``. Both fits go through
    ``train.core.fit_logged`` (the options as a ``TrainConfig``; ``log`` gets one line per
    epoch, then each fit's summary). Notebook 11."""
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    if level not in HUB_CAPTION_DEFAULTS["sequence_length"]:
        raise ValueError(f"level must be one of {sorted(HUB_CAPTION_DEFAULTS['sequence_length'])}"
                         f", got {level!r}")
    config = TrainConfig(epochs, batch_size, seed=seed).resolved(
        **{name: HUB_CAPTION_DEFAULTS[name] for name in ("epochs", "batch_size", "learning_rate")})
    vision_epochs = HUB_CAPTION_DEFAULTS["vision_epochs"] if vision_epochs is None \
        else vision_epochs
    if not (is_int(vision_epochs) and vision_epochs >= 0):
        raise ValueError(f"vision_epochs must be an int >= 0, got {vision_epochs!r}")
    log = log or (lambda message: None)
    root = store.ensure_data(root)
    seed_everything(seed)
    tokenizer = tokenizer or train_tokenizer()
    options = {**HUB_CAPTION_DEFAULTS["model_options"], **options}
    model = hub_presets.tiny_paligemma(
        tokenizer, sequence_length=HUB_CAPTION_DEFAULTS["sequence_length"][level],
        seed=seed, **options)
    images, captions, _ = data.load_arrays("retrieval", level, "train", root=root)
    if train_size is not None:
        images, captions = images[:train_size], captions[:train_size]
    seconds = 0.0
    if vision_epochs:
        vision_config = dataclasses.replace(
            config, epochs=vision_epochs,
            learning_rate=HUB_CAPTION_DEFAULTS["vision_learning_rate"])
        vision = fit_logged(model, (images, captions), vision_config,
                            name=f"paligemma/{level} vision", log=log,
                            fit=_fit_with(pretrain_vision, vision_config))
        seconds += vision["train_seconds"]
        log(f"paligemma: vision tower pre-trained {vision_epochs} epochs in "
            f"{seconds:.0f} s, last loss {vision['history']['loss'][-1]:.4f}")
    fitted = fit_logged(model, (images, captions), config, name=f"paligemma/{level}", log=log,
                        fit=_fit_with(fit_captioner, config))
    seconds += fitted["train_seconds"]
    log(f"paligemma: {config.epochs} epochs in {seconds:.0f} s, last loss "
        f"{fitted['history']['loss'][-1]:.3f}")
    test_images, test_captions, _ = data.load_arrays("retrieval", level, "test", root=root)
    test_scenes = data.load_records("scenes", level, "test", root=root)
    scores = caption_scores(model, test_images, test_captions, test_scenes)
    result = {"task": "caption", "level": level, "arch": "paligemma",
              **{k: scores[k] for k in ("exact_match", "correct_statements", "token_accuracy")},
              "params": int(model.count_params()), "train_seconds": float(seconds),
              "epochs": config.epochs, "vision_epochs": vision_epochs, "model_options": options,
              "seed": seed,
              "train_examples": len(images),
              "test_examples": len(test_images),
              "samples": [{"reference": c, "generated": g} for c, g in
                          list(zip(test_captions, scores["generated"], strict=True))[:5]]}
    if keep_model:
        result["model"] = model
    return result


def benchmark():
    """``python -m mmcourse bench hub``: (1) the tiny PaliGemma's forward pass by hand
    (``hub.paligemma_logits_by_hand``, NumPy) against KerasHub's, batch 8; (2) generation of
    16 tokens for 64 images with KerasHub's cached sampler (``generate``) against notebook
    08's LLaVA-style decoder with its KV cache (``vlm.decode_ids``). Random weights: speed
    does not depend on them. Notebook 11."""
    from mmcourse import bench, clip, hub  # noqa: PLC0415
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    rng = seed_everything(0)
    tokenizer = train_tokenizer()
    model = hub_presets.tiny_paligemma(tokenizer, sequence_length=16)
    images = rng.integers(0, 256, size=(64, 64, 64, 3), dtype=np.uint8)
    inputs, _, _ = caption_inputs(model, images[:8], ["a small red circle"] * 8)
    backbone = model.backbone
    forward = bench.time_candidates({
        "by hand (NumPy) b8": lambda: hub.paligemma_logits_by_hand(
            backbone, inputs["images"], inputs["token_ids"], inputs["padding_mask"],
            inputs["response_mask"]),
        "KerasHub b8": lambda: backbone.token_embedding(backbone(inputs), reverse=True)},
        repeats=5, warmup=1, items=8)
    vocabulary = vlm.decoder_vocabulary(store.ensure_data())
    course = vlm.build_vlm(vlm.build_decoder(len(vocabulary), max_length=40),
                           vlm.vision_tokens(clip.build_image_encoder()), "llava")
    prompt_length = len(np.asarray(tokenizer.tokenize(hub_presets.PROMPTS["en"]))) + 1
    model.preprocessor.sequence_length = prompt_length + 16
    generation = bench.time_candidates({
        "KerasHub generate b64 L16": lambda: model.generate(
            {"images": images, "prompts": [hub_presets.PROMPTS["en"]] * 64},
            stop_token_ids=None),
        "course decode_ids b64 L16": lambda: vlm.decode_ids(
            course, images, max_length=16, use_cache=True, stop_at_end=False)},
        repeats=3, warmup=1, items=64 * 16)
    return bench.BenchResult(
        "hub", "the tiny PaliGemma by hand vs KerasHub, and KerasHub's cached generation vs "
               "notebook 08's decoder",
        timings=forward + generation,
        ratios=[bench.Ratio("KerasHub forward vs by hand (speed-up)",
                            bench.speedup(forward, "by hand (NumPy) b8", "KerasHub b8")),
                bench.Ratio("KerasHub generate vs course decoder (speed-up)",
                            bench.speedup(generation, "course decode_ids b64 L16",
                                          "KerasHub generate b64 L16"))],
        facts={"paligemma_params": int(model.count_params()),
               "course_llava_params": int(course.count_params()),
               "paligemma_image_tokens": int(backbone.image_sequence_length)})
