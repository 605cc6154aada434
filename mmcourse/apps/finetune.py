"""Adapt a KerasHub PaliGemma preset to new captions with LoRA, full fine-tuning or not at
all (notebook 12; ``python -m mmcourse finetune``).

The data is a folder in the course's own-data format (images plus ``captions.csv``, notebook
09), split by image (``owndata.split_images``): the model trains on the train split and is
scored on the test split, by exact match of its greedy captions. The folder is only read.
LoRA is KerasHub's (``backbone.enable_lora(rank)``: the query and value projections of every
attention layer, vision encoder and decoder; everything else frozen, the biases of those
layers too, which ``save_lora_weights`` would not save), and only the adapter is saved
(``save_lora_weights``, a ``.lora.h5`` file of a few kB), to be loaded on top of the same base
preset (``load_lora_weights``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmcourse.apps import owndata
from mmcourse.data import folders, text
from mmcourse.hub import presets as hub_presets
from mmcourse.train import hub as hub_training
from mmcourse.train import tokenizer
from mmcourse.train.core import TrainConfig, fit_logged

#: Training of ``finetune`` unless told otherwise: the tiny PaliGemma's rate (notebook 11).
FINETUNE_DEFAULTS = {"epochs": 10, "batch_size": 32, "learning_rate": 2e-3}
#: The suffix KerasHub requires of an adapter file.
LORA_SUFFIX = ".lora.h5"


def load_caption_folder(folder, image_size: int, seed: int = 0) -> dict:
    """``{"train": (images, captions), "test": (images, captions)}`` from an own-data folder
    (``folders.check_folder``; a labelled folder keeps its true pairs, label 1), split by
    image with ``owndata.split_images`` (validation images join the training split). Images
    are uint8 (N, image_size, image_size, 3). Any problem of the folder raises one
    ``folders.DataError`` that lists them. Notebook 12."""
    check = folders.check_folder(folder, size=image_size)
    if not check.ok:
        raise folders.DataError(
            f"{Path(folder) / folders.CAPTIONS}: {len(check.problems)} problem(s) (`python -m "
            f"mmcourse check-data {folder}` lists them):\n"
            + "\n".join(str(p) for p in check.problems))
    rows = [row for row in check.rows if not check.captions.has_label or row.label == 1]
    assignment = owndata.split_images([row.image for row in rows], seed)
    splits = {}
    for split, names in (("train", assignment["train"] | assignment["val"]),
                         ("test", assignment["test"])):
        chosen = [row for row in rows if row.image in names]
        splits[split] = (np.stack([check.images[row.image] for row in chosen]),
                         [row.text for row in chosen])
    return splits


def prompt_for(captions) -> str:
    """PaliGemma's task prompt for ``captions``' language: ``PROMPTS["zh"]`` when most of them
    hold Chinese characters, else ``PROMPTS["en"]``. Notebook 12."""
    chinese = sum(bool(tokenizer.HAN_CHARACTER.search(str(c))) for c in captions)
    return hub_presets.PROMPTS["zh" if 2 * chinese > len(captions) else "en"]


def exact_match(model, images, captions, prompt: str = hub_presets.PROMPTS["en"]) -> float:
    """The fraction of ``images`` whose greedy caption equals the reference word for word
    (``text.split_words``, so spacing and case do not count). Notebook 12."""
    generated = hub_training.generate_captions(model, images, prompt)
    return float(np.mean([text.split_words(g) == text.split_words(c)
                          for g, c in zip(generated, captions, strict=True)]))


def trainable_count(model) -> int:
    """Numbers the optimiser updates: the sum of the trainable weights' sizes. Notebook 12."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def adapt(model, setting) -> None:
    """Prepare ``model`` (a ``PaliGemmaCausalLM``) for ``setting``: ``"full"`` trains every
    weight, ``"frozen"`` none, an int r >= 1 adds rank-r LoRA (``backbone.enable_lora``).
    Notebook 12."""
    if setting == "full":
        model.backbone.trainable = True
    elif setting == "frozen":
        model.backbone.trainable = False
    elif isinstance(setting, (int, np.integer)) and not isinstance(setting, bool) \
            and setting >= 1:
        model.backbone.enable_lora(int(setting))
        # KerasHub leaves the biases of the LoRA layers trainable, but save_lora_weights
        # keeps only A and B: freeze them, so that the saved adapter is all that changed.
        for layer in model.backbone._flatten_layers(include_self=False):
            if getattr(layer, "lora_enabled", False) and getattr(layer, "bias", None) is not None:
                layer.bias.trainable = False
    else:
        raise ValueError(f"setting must be 'frozen', 'full' or a LoRA rank >= 1, got "
                         f"{setting!r}")


def finetune(model, data: dict, setting, *, epochs: int | None = None,
             batch_size: int | None = None, learning_rate: float | None = None,
             prompt: str = hub_presets.PROMPTS["en"], seed: int = 0,
             log: Callable[[str], None] | None = None) -> dict:
    """Adapt ``model`` to ``data`` (``load_caption_folder``'s splits) with ``setting``
    (``adapt``) and report ``setting``, ``trainable_params``, ``total_params``,
    ``exact_match_before`` and ``exact_match_after`` on the test split, ``train_seconds``
    and the ``loss`` per epoch. The options are a ``train.core.TrainConfig`` (None:
    ``FINETUNE_DEFAULTS``; a bad one is a ``ValueError`` naming it) and the fit is
    ``train.core.fit_logged``'s: ``log`` gets one line per epoch. ``"frozen"`` trains
    nothing. Notebook 12."""
    import keras  # noqa: PLC0415

    config = TrainConfig(epochs, batch_size, learning_rate, seed=seed).resolved(
        **FINETUNE_DEFAULTS)
    test_images, test_captions = data["test"]
    before = exact_match(model, test_images, test_captions, prompt)
    keras.utils.set_random_seed(config.seed)  # LoRA's A and the dropout, if any
    adapt(model, setting)
    losses, seconds = [], 0.0
    if setting != "frozen":
        def fit(model, train, *, epochs, callbacks):
            return {"history": hub_training.fit_captioner(
                model, *train, epochs=epochs, batch_size=config.batch_size,
                learning_rate=config.learning_rate, prompt=prompt,
                callbacks=callbacks).history}

        fitted = fit_logged(model, data["train"], config, name=f"finetune/{setting}",
                            log=log, fit=fit)
        seconds, losses = fitted["train_seconds"], fitted["history"]["loss"]
    return {"setting": setting, "trainable_params": trainable_count(model),
            "total_params": int(model.count_params()), "exact_match_before": before,
            "exact_match_after": exact_match(model, test_images, test_captions, prompt),
            "train_seconds": seconds, "epochs": config.epochs if setting != "frozen" else 0,
            "loss": losses, "train_examples": len(data["train"][1]),
            "test_examples": len(test_captions)}


def save_adapter(model, path) -> Path:
    """Save only ``model``'s LoRA weights to ``path`` (ending in ``LORA_SUFFIX``), atomically:
    written beside it under a temporary name, renamed into place when complete. Notebook 12.
    """
    path = Path(path)
    if not path.name.endswith(LORA_SUFFIX):
        raise ValueError(f"path must end in {LORA_SUFFIX!r} (KerasHub's adapter files), got "
                         f"{str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=LORA_SUFFIX,
                                       dir=path.parent)
    os.close(handle)
    try:
        model.backbone.save_lora_weights(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def load_with_adapter(preset, adapter=None):
    """The ``PaliGemmaCausalLM`` of ``preset`` (``hub_presets.load_preset``), with the LoRA
    weights of ``adapter`` (a ``.lora.h5`` file) on top when given. Notebook 12."""
    import keras_hub  # noqa: PLC0415

    model = hub_presets.load_preset(keras_hub.models.PaliGemmaCausalLM, preset)
    if adapter is not None:
        model.backbone.load_lora_weights(str(adapter))
    return model


def preset_image_size(preset) -> int | None:
    """The backbone's image size from a local preset folder's ``config.json``, or None."""
    try:
        config = json.loads((Path(preset) / "config.json").read_text(encoding="utf-8"))
        return int(config["config"]["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def benchmark():
    """``python -m mmcourse bench lora``: one training step (batch 32, Adam) of the tiny
    PaliGemma preset with LoRA rank 4 against full fine-tuning, side by side, and the
    trainable fraction of each. Random images, the course's captions. Notebook 12."""
    import keras  # noqa: PLC0415

    from mmcourse import REPO_ROOT, bench
    from mmcourse.data import scenes as data  # noqa: PLC0415

    preset = REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"
    rng = np.random.default_rng(0)
    captions = data.load_arrays("retrieval", "attributes", "test")[1][:32]
    images = rng.integers(0, 256, size=(32, 64, 64, 3), dtype=np.uint8)
    steps, fractions = {}, {}
    for setting in (4, "full"):
        model = load_with_adapter(preset)
        adapt(model, setting)
        inputs, labels, weights = hub_training.caption_inputs(model, images, captions)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.preprocessor = None
        name = "LoRA rank 4 step b32" if setting == 4 else "full fine-tuning step b32"
        steps[name] = (lambda m=model, x=inputs, y=labels, w=weights:
                       m.train_on_batch(x, y, sample_weight=w))
        fractions[name] = trainable_count(model) / model.count_params()
    timings = bench.time_candidates(steps, repeats=5, warmup=2, items=32)
    return bench.BenchResult(
        "lora", "a training step of the tiny PaliGemma: LoRA rank 4 against full fine-tuning",
        timings=timings,
        ratios=[bench.Ratio("LoRA step vs full step (speed-up)",
                            bench.speedup(timings, "full fine-tuning step b32",
                                          "LoRA rank 4 step b32")),
                bench.Ratio("trainable fraction, LoRA rank 4 / full",
                            fractions["LoRA rank 4 step b32"]
                            / fractions["full fine-tuning step b32"], higher_is_better=False)],
        facts={"trainable_fraction": fractions})
