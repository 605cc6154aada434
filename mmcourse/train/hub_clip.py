"""KerasHub's CLIP trained on the course's pairs (notebooks 11 and 12): ``train_hub_clip`` is
notebook 07's ``train_clip`` with ``hub.clip.build_hub_clip`` (``python -m mmcourse train
--task retrieval --arch keras_hub_clip``), and ``fit_clip_backbone`` trains a plain
``CLIPBackbone`` through its own preprocessor, to save as a KerasHub preset.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from mmcourse import clip
from mmcourse.hub.clip import HUB_CLIP_OPTIONS, build_hub_clip
from mmcourse.train import clip as clip_training
from mmcourse.train.core import TrainConfig

HUB_CLIP_TRAINING = {"epochs": 25, "learning_rate": 3e-3, "batch_size": 64}


def train_hub_clip(level: str = "attributes", epochs: int | None = None, seed: int = 0,
                   root=None, *, batch_size: int | None = None,
                   learning_rate: float | None = None, train_size: int | None = None,
                   log=None, keep_model: bool = False, model_options: dict | None = None) -> dict:
    """``train.clip.train_clip`` with ``build_hub_clip`` (``model_options`` override
    ``HUB_CLIP_OPTIONS``) and ``HUB_CLIP_TRAINING`` where an argument is None: notebook 07's
    data, loss, schedule and scores, with the same keys plus ``arch`` and ``model_options``.
    Notebook 11."""
    config = TrainConfig(epochs, batch_size, learning_rate, seed).resolved(**HUB_CLIP_TRAINING)
    model_options = dict(model_options or {})
    result = clip_training.train_clip(
        level, config.epochs, seed, root, batch_size=config.batch_size,
        learning_rate=config.learning_rate, train_size=train_size, log=log,
        keep_model=keep_model, model_options=model_options,
        builder=functools.partial(build_hub_clip, seed=seed))
    return {"arch": "keras_hub_clip", "model_options": {**HUB_CLIP_OPTIONS, **model_options},
            **result}


# --- a plain KerasHub CLIP preset, trained on captions (notebook 12) ---


def fit_clip_backbone(backbone, preprocessor, images, captions, *, epochs: int = 30,
                      batch_size: int = 64, learning_rate: float = 3e-3, seed: int = 0):
    """Train a ``keras_hub.models.CLIPBackbone`` in place on uint8 ``images`` (N, H, W, 3)
    and caption strings, through its own ``preprocessor`` (a ``CLIPPreprocessor``: image
    converter and tokenizer), so that the backbone and preprocessor save as a plain KerasHub
    preset (``hub_presets.save_preset``). Notebook 07's ``ContrastiveLoss`` on the backbone's
    own logits (its ``CLIPHead``: exp(logit_scale) x cosine; the scale learns), identical
    captions counted as positives, AdamW; random flips in training only (attribute captions
    say nothing about left or up). Returns the Keras ``History``. Notebook 12."""
    captions = [str(c) for c in captions]
    if len(captions) != len(images):
        raise ValueError(f"images and captions must have the same length, got {len(images)} "
                         f"and {len(captions)}")
    keras.utils.set_random_seed(seed)
    pixels = np.asarray(preprocessor.image_converter(np.asarray(images)))
    token_ids = np.concatenate([np.asarray(preprocessor({"prompts": captions[i:i + 256],
                                                         "images": None})["token_ids"])
                                for i in range(0, len(captions), 256)])
    caption_ids = np.unique(captions, return_inverse=True)[1].astype("int32")
    image_input = keras.Input(pixels.shape[1:], name="images")
    token_input = keras.Input((None,), dtype="int32", name="token_ids")
    flipped = keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)(image_input)
    logits = backbone({"images": flipped, "token_ids": token_input})["vision_logits"]
    trainer = keras.Model([image_input, token_input], logits, name="clip_trainer")
    trainer.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-4),
                    loss=clip.ContrastiveLoss(), jit_compile=False)  # XLA: a minute to compile
    return trainer.fit([pixels, token_ids], caption_ids, batch_size=batch_size, epochs=epochs,
                       shuffle=True, verbose=0)
