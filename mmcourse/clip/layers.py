"""CLIP's layers (notebook 07): ViT patches, class token and positions, the text embedding,
the masked mean and the contrastive logits with their learned temperature.

Like ``mmcourse.blocks``, this module imports Keras at module level because it defines
layers registered for ``.keras`` saving.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from mmcourse.configs import positive_int

#: CLIP initialises the temperature at 0.07 and clips the logit scale 1 / temperature at 100.
INITIAL_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


@keras.saving.register_keras_serializable(package="mmcourse")
class PatchEmbedding(keras.layers.Layer):
    """Images (batch, H, W, C) -> patch tokens (batch, (H / p) (W / p), width).

    Each patch, flattened as ``mmcourse.scratch.patchify`` flattens it, goes through one
    linear map: token = patch @ kernel + bias, kernel (p p C, width). This is exactly a
    ``Conv2D(width, kernel_size=p, strides=p)`` whose kernel is this one reshaped to
    (p, p, C, width) (``as_conv2d``). Introduced in notebook 07.
    """

    def __init__(self, patch_size: int = 8, width: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = positive_int("patch_size", patch_size)
        self.width = positive_int("width", width)

    def _grid(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(f"PatchEmbedding needs images (batch, H, W, C) with known H, W "
                             f"and C, got {tuple(input_shape)}")
        height, width, channels = input_shape[1:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image height and width must be multiples of patch_size "
                             f"{self.patch_size}, got H={height}, W={width}")
        return height // self.patch_size, width // self.patch_size, channels

    def build(self, input_shape):
        channels = self._grid(input_shape)[2]
        self.kernel = self.add_weight(shape=(self.patch_size ** 2 * channels, self.width),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.width,), initializer="zeros", name="bias")

    def call(self, images):
        rows, columns, channels = self._grid(images.shape)
        p = self.patch_size
        grid = ops.reshape(images, (-1, rows, p, columns, p, channels))
        patches = ops.reshape(ops.transpose(grid, (0, 1, 3, 2, 4, 5)),
                              (-1, rows * columns, p * p * channels))
        return ops.matmul(patches, self.kernel) + self.bias

    def as_conv2d(self):
        """A ``Conv2D(width, kernel_size=p, strides=p)`` with this layer's weights: its output,
        reshaped to (batch, -1, width), equals this layer's."""
        channels = self.kernel.shape[0] // self.patch_size ** 2
        conv = keras.layers.Conv2D(self.width, self.patch_size, strides=self.patch_size)
        conv.build((None, None, None, channels))
        conv.set_weights([np.reshape(ops.convert_to_numpy(self.kernel),
                                     (self.patch_size, self.patch_size, channels, self.width)),
                          ops.convert_to_numpy(self.bias)])
        return conv

    def compute_output_shape(self, input_shape):
        rows, columns, _ = self._grid(input_shape)
        return (input_shape[0], rows * columns, self.width)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "width": self.width}


@keras.saving.register_keras_serializable(package="mmcourse")
class ClassTokenAndPositions(keras.layers.Layer):
    """Tokens (batch, T, d) -> (batch, 1 + T, d): a learned class token in front, then a
    learned position embedding added to every token (ViT). After the transformer blocks the
    class token's output summarises the image. Introduced in notebook 07."""

    def build(self, input_shape):
        if len(input_shape) != 3 or None in input_shape[1:]:
            raise ValueError(f"ClassTokenAndPositions needs tokens (batch, T, d) with known T "
                             f"and d, got {tuple(input_shape)}")
        tokens, width = input_shape[1:]
        initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.class_token = self.add_weight(shape=(1, 1, width), initializer=initializer,
                                           name="class_token")
        self.positions = self.add_weight(shape=(1, tokens + 1, width),
                                         initializer=initializer, name="positions")

    def call(self, tokens):
        class_tokens = ops.broadcast_to(ops.cast(self.class_token, tokens.dtype),
                                        (ops.shape(tokens)[0], 1, tokens.shape[-1]))
        return ops.concatenate([class_tokens, tokens], axis=1) + self.positions

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + 1, input_shape[2])


@keras.saving.register_keras_serializable(package="mmcourse")
class ClassOutput(keras.layers.Layer):
    """Tokens (batch, 1 + T, d) -> the class token's output (batch, d). Introduced in
    notebook 07."""

    def call(self, tokens):
        return tokens[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="mmcourse")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token ids (batch, L) -> (batch, L, width): a token embedding plus a learned position
    embedding, for any L <= ``max_length``. Id 0 is padding: the layer's mask (True on real
    tokens) lets the attention after it ignore padded keys. Introduced in notebook 07."""

    def __init__(self, vocabulary_size: int, max_length: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = positive_int("vocabulary_size", vocabulary_size)
        self.max_length = positive_int("max_length", max_length)
        self.width = positive_int("width", width)
        self.tokens = keras.layers.Embedding(vocabulary_size, width, name="tokens",
                                             dtype=self.dtype_policy)
        self.positions = keras.layers.Embedding(max_length, width, name="positions",
                                                dtype=self.dtype_policy)

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((None,))

    def call(self, token_ids):
        length = ops.shape(token_ids)[-1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(f"token_ids has {length} positions but this embedding knows "
                             f"max_length={self.max_length}: vectorise to at most "
                             f"{self.max_length} tokens")
        return self.tokens(token_ids) + self.positions(ops.arange(length))[None]

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.width)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "max_length": self.max_length, "width": self.width}


@keras.saving.register_keras_serializable(package="mmcourse")
class MaskedMean(keras.layers.Layer):
    """``[hidden (batch, L, d), token_ids (batch, L)]`` -> (batch, d): the mean of the hidden
    states over the real tokens (id != 0), so padding changes nothing. Introduced in
    notebook 07."""

    def call(self, inputs):
        hidden, token_ids = inputs
        weights = ops.cast(ops.not_equal(token_ids, 0), hidden.dtype)[..., None]
        return ops.sum(hidden * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])


def l2_normalise(x):
    """``x`` divided by its L2 norm along the last axis (Keras ops). Notebook 07."""
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="mmcourse")
class ContrastiveLogits(keras.layers.Layer):
    """``[image_embeddings (N, d), text_embeddings (M, d)]`` -> logits (N, M): the cosine
    similarities divided by the temperature.

    The temperature is learned as CLIP learns it: a log scale log(1 / tau) initialised at
    tau = ``temperature`` (0.07), with 1 / tau clipped at ``MAX_LOGIT_SCALE`` (100). With
    ``learn_temperature=False`` it stays fixed. Introduced in notebook 07.
    """

    def __init__(self, temperature: float = INITIAL_TEMPERATURE, learn_temperature: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
                or not 1 / MAX_LOGIT_SCALE <= temperature:
            raise ValueError(f"temperature must be a number >= {1 / MAX_LOGIT_SCALE} (1 / the "
                             f"largest logit scale), got {temperature!r}")
        self.initial_temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            shape=(), name="log_scale", trainable=self.learn_temperature,
            initializer=keras.initializers.Constant(-math.log(self.initial_temperature)))

    @property
    def temperature(self) -> float:
        """The current temperature tau (after the clip)."""
        return 1.0 / float(min(math.exp(float(ops.convert_to_numpy(self.log_scale))),
                               MAX_LOGIT_SCALE))

    def call(self, inputs):
        image_embeddings, text_embeddings = inputs
        scale = ops.minimum(ops.exp(self.log_scale), MAX_LOGIT_SCALE)
        return scale * ops.matmul(l2_normalise(image_embeddings),
                                  ops.transpose(l2_normalise(text_embeddings)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {**super().get_config(), "temperature": self.initial_temperature,
                "learn_temperature": self.learn_temperature}
