"""KerasHub's ``CLIPBackbone`` trained with notebook 07's contrastive loss on the course's pairs
(notebook 11; ``python -m mmcourse train --task retrieval --arch keras_hub_clip``).

``build_hub_clip`` has the signature and the interface of ``clip.build_clip``: a compiled
``[images, token_ids] -> logits`` model whose sub-models ``image_encoder`` and
``text_encoder`` take notebook 07's inputs (images in [0, 1], the course's word ids padded
with 0), ending in notebook 07's ``ContrastiveLogits`` and ``ContrastiveLoss``. So
``train.clip.train_clip(..., builder=build_hub_clip)`` trains it (``train.hub_clip``), and
retrieval and zero-shot are scored by notebook 07's own code. What KerasHub's CLIP adds:

- its text transformer is causal and reads the caption out at the end token, found as the
  largest id of the sequence (``argmax``, as OpenAI's tokenizer numbers it last); the
  course's vocabulary has none, so ``AppendEndToken`` writes id ``vocabulary_size`` after
  the last word;
- its ViT cuts its input into ``patch_size`` squares: by default the 8 x 8 feature map of
  notebook 07's conv stem (the ViT paper's hybrid), or with ``stem_filters=()`` the pixels
  themselves (``image_size`` may be smaller than the data's 64: the images are resized).
"""

from __future__ import annotations

import keras
from keras import ops

from mmcourse import clip
from mmcourse.data import text
from mmcourse.hub import presets as hub_presets

#: The KerasHub CLIP of ``train --task retrieval --arch keras_hub_clip`` (``tiny_clip``
#: options) unless told otherwise (its training: ``train.hub_clip.HUB_CLIP_TRAINING``):
#: notebook 07's hybrid stem (three stride-2 convolutions to an 8 x 8 grid of 32 channels,
#: one patch per cell) in front of KerasHub's ViT (3 seeds in
#: docs/results/hub_clip_table.jsonl). ``stem_filters=(), patch_size=8`` is the plain ViT on
#: 8 x 8 pixel patches, which learns these 2,000 images less well.
HUB_CLIP_OPTIONS = {"image_size": 64, "patch_size": 1, "hidden_dim": 64, "num_layers": 2,
                    "num_heads": 4, "intermediate_dim": 128, "projection_dim": 64,
                    "stem_filters": (16, 32, 32)}



@keras.saving.register_keras_serializable(package="mmcourse")
class AppendEndToken(keras.layers.Layer):
    """Word ids (batch, L), padded with 0 at the end -> (batch, L + 1) with ``end_id`` right
    after the last word: [5, 7, 0] -> [5, 7, end_id, 0]. Introduced in notebook 11."""

    def __init__(self, end_id: int, **kwargs):
        super().__init__(**kwargs)
        self.end_id = int(end_id)

    def call(self, token_ids):
        token_ids = ops.cast(token_ids, "int32")
        lengths = ops.sum(ops.cast(ops.not_equal(token_ids, 0), "int32"), axis=1)
        padded = ops.pad(token_ids, [[0, 0], [0, 1]])
        positions = ops.arange(ops.shape(padded)[1], dtype="int32")
        return ops.where(ops.equal(positions[None, :], lengths[:, None]),
                         ops.cast(self.end_id, "int32"), padded)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length)

    def get_config(self):
        return {**super().get_config(), "end_id": self.end_id}


def hub_encoders(backbone, image_shape=(64, 64, 3), stem_filters=()):
    """``(image_encoder, text_encoder)``: Keras models on notebook 07's inputs around a
    ``keras_hub.models.CLIPBackbone`` whose text vocabulary has one id more than the course's
    (the end token, the largest id). Images (batch, *image_shape) in [0, 1] are centred to
    [-1, 1], go through ``stem_filters`` stride-2 3x3 ReLU convolutions if any (notebook 07's
    hybrid stem) and are resized to the backbone's input size if needed; word ids get
    ``AppendEndToken``. Notebook 11."""
    shape = tuple(backbone.vision_encoder.image_shape)
    end_id = backbone.text_encoder.vocabulary_size - 1
    images = keras.Input(tuple(image_shape), name="images")
    features = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(images)
    for index, filters in enumerate(stem_filters):
        features = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                       name=f"stem{index + 1}")(features)
    if tuple(features.shape[-1:]) != shape[-1:]:
        raise ValueError(f"the backbone takes {shape[-1]} channels, the stem gives "
                         f"{features.shape[-1]}: set tiny_clip's image_channels")
    if tuple(features.shape[1:3]) != shape[:2]:
        features = keras.layers.Resizing(*shape[:2], interpolation="area",
                                         name="resize")(features)
    image_encoder = keras.Model(images, backbone.get_vision_embeddings(features),
                                name="image_encoder")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    with_end = AppendEndToken(end_id, name="append_end_token")(token_ids)
    text_encoder = keras.Model(token_ids, backbone.get_text_embeddings(with_end),
                               name="text_encoder")
    return image_encoder, text_encoder


def build_hub_clip(vocabulary_size: int, *, max_length: int = text.SEQUENCE_LENGTH,
                   temperature: float = clip.INITIAL_TEMPERATURE, learn_temperature: bool = True,
                   learning_rate: float = clip.CLIP_LEARNING_RATE, image_shape=(64, 64, 3),
                   seed: int = 0, **options):
    """``clip.build_clip`` with KerasHub's CLIP as the two encoders: ``hub_presets.tiny_clip``
    with ``HUB_CLIP_OPTIONS`` (overridden by ``options``; ``stem_filters`` goes to
    ``hub_encoders``), a vocabulary of ``vocabulary_size + 1`` (the end token) and
    ``max_length + 1`` positions; compiled with notebook 07's ``ContrastiveLoss`` and
    optimiser. Notebook 11."""
    options = {**HUB_CLIP_OPTIONS, **options}
    stem_filters = tuple(options.pop("stem_filters"))
    size = image_shape[0] // 2 ** len(stem_filters) if stem_filters else options["image_size"]
    backbone = hub_presets.tiny_clip(
        vocabulary_size + 1, seed=seed, **{**options, "max_sequence_length": max_length + 1,
                                           "image_size": size,
                                           "image_channels": (stem_filters or (3,))[-1]})
    image_encoder, text_encoder = hub_encoders(backbone, image_shape, stem_filters)
    images = keras.Input(tuple(image_shape), name="images")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    logits = clip.ContrastiveLogits(temperature, learn_temperature, name="logits")(
        [image_encoder(images), text_encoder(token_ids)])
    model = keras.Model([images, token_ids], logits, name="keras_hub_clip")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-4),
                  loss=clip.ContrastiveLoss())
    return model
