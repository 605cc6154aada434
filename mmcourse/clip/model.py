"""CLIP's two encoders, a small ViT and a text transformer, and the compiled dual encoder
(notebook 07).
"""

from __future__ import annotations

import keras

import mmcourse.clip.layers as clip_layers
from mmcourse.blocks import TransformerBlock
from mmcourse.clip.loss import ContrastiveLoss
from mmcourse.data import text

#: The model of ``build_clip`` and ``train_clip`` unless told otherwise.
CLIP_DEFAULTS = {"stem_filters": (16, 32, 32), "patch_size": 1, "width": 64, "image_depth": 2,
                 "text_depth": 1, "num_heads": 4, "key_dim": 16, "hidden_units": 128, "embedding_dim": 64}
CLIP_LEARNING_RATE = 2e-3


def _options(options: dict) -> dict:
    unknown = sorted(set(options) - set(CLIP_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(CLIP_DEFAULTS)}")
    return {**CLIP_DEFAULTS, **options}


def transformer_blocks(x, depth, options, prefix):
    """``depth`` transformer blocks named ``{prefix}_block1``, ..., then a final layer
    normalisation: the trunk of CLIP's encoders. Notebook 07."""
    for index in range(depth):
        x = TransformerBlock(options["num_heads"], options["key_dim"], options["hidden_units"],
                             name=f"{prefix}_block{index + 1}")(x)
    return keras.layers.LayerNormalization(name=f"{prefix}_norm")(x)


def build_image_encoder(image_shape=(64, 64, 3), **options):
    """A small ViT: images (batch, H, W, 3) in [0, 1] -> embeddings (batch, embedding_dim),
    the class token's output projected to the shared space.

    The pixels are first centred to [-1, 1]. With the default ``stem_filters`` (16, 32, 32)
    it is the ViT paper's *hybrid*: three stride-2 3x3 convolutions (notebook 04's CNN)
    make an 8 x 8 grid whose cells are the patches (``patch_size`` 1).
    ``stem_filters=(), patch_size=8`` gives the plain ViT on 8 x 8 pixel patches.
    Introduced in notebook 07."""
    options = _options(options)
    images = keras.Input(image_shape, name="images")
    features = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(images)
    for index, filters in enumerate(options["stem_filters"]):
        features = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                       name=f"stem{index + 1}")(features)
    tokens = clip_layers.PatchEmbedding(options["patch_size"], options["width"],
                                        name="patches")(features)
    tokens = clip_layers.ClassTokenAndPositions(name="class_and_positions")(tokens)
    tokens = transformer_blocks(tokens, options["image_depth"], options, "vit")
    summary = clip_layers.ClassOutput(name="class_output")(tokens)
    embeddings = keras.layers.Dense(options["embedding_dim"], use_bias=False,
                                    name="image_projection")(summary)
    return keras.Model(images, embeddings, name="image_encoder")


def build_text_encoder(vocabulary_size: int, max_length: int = text.SEQUENCE_LENGTH,
                       **options):
    """A text transformer: token ids (batch, L), L <= ``max_length``, 0 = padding ->
    embeddings (batch, embedding_dim), the mean over real tokens projected to the shared
    space. Introduced in notebook 07."""
    options = _options(options)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    hidden = clip_layers.TokenAndPositionEmbedding(vocabulary_size, max_length,
                                                   options["width"], name="embedding")(token_ids)
    hidden = transformer_blocks(hidden, options["text_depth"], options, "text")
    pooled = clip_layers.MaskedMean(name="mean_over_tokens")([hidden, token_ids])
    embeddings = keras.layers.Dense(options["embedding_dim"], use_bias=False,
                                    name="text_projection")(pooled)
    return keras.Model(token_ids, embeddings, name="text_encoder")


def build_clip(vocabulary_size: int, *, max_length: int = text.SEQUENCE_LENGTH,
               temperature: float = clip_layers.INITIAL_TEMPERATURE,
               learn_temperature: bool = True,
               learning_rate: float = CLIP_LEARNING_RATE, image_shape=(64, 64, 3), **options):
    """The dual encoder, compiled: ``[images, token_ids]`` -> logits (batch, batch), trained
    with ``ContrastiveLoss`` on the batch's caption ids. The encoders are the sub-models
    ``image_encoder`` and ``text_encoder`` (``model.get_layer(...)``), the temperature is
    the layer ``logits``. ``options`` override ``CLIP_DEFAULTS``. Introduced in notebook 07.
    """
    image_encoder = build_image_encoder(image_shape, **options)
    text_encoder = build_text_encoder(vocabulary_size, max_length, **options)
    images = keras.Input(image_shape, name="images")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    logits = clip_layers.ContrastiveLogits(temperature, learn_temperature, name="logits")(
        [image_encoder(images), text_encoder(token_ids)])
    model = keras.Model([images, token_ids], logits, name="clip")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-4),
                  loss=ContrastiveLoss())
    return model
