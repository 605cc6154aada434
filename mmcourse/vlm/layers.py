"""The Keras layers of the toy multimodal language model (notebook 08): the decoder's
embedding and causal block (``DecoderEmbedding``, ``DecoderBlock``), Flamingo's
``GatedCrossAttention``, patch coordinates for vision tokens (``GridCoordinates``) and
LLaVA's ``DropPrefix``. Each block also runs one new position against cached keys and
values (``step``), for KV-cache decoding (``mmcourse.vlm.decode``).

Registered for ``.keras`` saving (package "mmcourse"), so this module imports Keras at
module level.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from mmcourse.blocks import coordinate_features
from mmcourse.clip import TokenAndPositionEmbedding
from mmcourse.configs import positive_int


def _attend(attention, query, keys, values):
    """Attention by hand with a ``MultiHeadAttention``'s own weights: query (B, Tq, H, Dk)
    already projected, keys and values (B, Tk, H, Dk) -> (B, Tq, d), no mask."""
    query = query * ops.cast(1.0 / math.sqrt(attention._key_dim), query.dtype)
    scores = ops.einsum("bqhd,bkhd->bhqk", query, keys)
    weights = ops.softmax(scores, axis=-1)
    return attention._output_dense(ops.einsum("bhqk,bkhd->bqhd", weights, values))


@keras.saving.register_keras_serializable(package="mmcourse")
class DecoderEmbedding(TokenAndPositionEmbedding):
    """Token ids (batch, L) -> (batch, L, width): notebook 07's token plus learned position
    embedding, L <= ``max_length``, without its padding mask: the causal mask already hides
    the padding at the end of a caption from every real token. ``step(ids, position)``
    embeds one token at a given position (KV-cache decoding). Introduced in notebook 08."""

    def compute_mask(self, token_ids, mask=None):
        return None

    def step(self, token_ids, position):
        """Token ids (batch, 1) at text position ``position`` -> (batch, 1, width)."""
        return self.tokens(token_ids) + self.positions(ops.reshape(position, (1,)))[None]


class _FeedForward:
    def _build_feed_forward(self, shape, hidden_units):
        self.ff_norm = keras.layers.LayerNormalization(name="ff_norm", dtype=self.dtype_policy)
        self.hidden = keras.layers.Dense(hidden_units, activation="gelu", name="hidden",
                                         dtype=self.dtype_policy)
        self.out = keras.layers.Dense(shape[-1], name="out", dtype=self.dtype_policy)
        self.ff_norm.build(shape)
        self.hidden.build(shape)
        self.out.build((*shape[:-1], hidden_units))

    def _feed_forward(self, x):
        return self.out(self.hidden(self.ff_norm(x)))


@keras.saving.register_keras_serializable(package="mmcourse")
class DecoderBlock(_FeedForward, keras.layers.Layer):
    """A pre-norm causal transformer block (GPT-2):

        x <- x + MHA(LN(x), LN(x), causal),   x <- x + W_2 gelu(W_1 LN(x) + b_1) + b_2

    Position t attends to positions 0..t only (``use_causal_mask=True``). For KV-cache
    decoding, ``keys_values(x)`` gives the keys and values (batch, T, heads, key_dim) of a
    whole input, and ``step(x_new, keys, values)`` runs one new position (batch, 1, d)
    against the cached ones, by hand with the attention layer's own weights, returning the
    output and the extended cache. Introduced in notebook 08.
    """

    def __init__(self, num_heads: int = 4, key_dim: int = 16, hidden_units: int = 128,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = positive_int("num_heads", num_heads)
        self.key_dim = positive_int("key_dim", key_dim)
        self.hidden_units = positive_int("hidden_units", hidden_units)
        self.attention_norm = keras.layers.LayerNormalization(name="attention_norm",
                                                              dtype=self.dtype_policy)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="attention",
                                                         dtype=self.dtype_policy)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"DecoderBlock needs tokens (batch, T, d) with known d, got "
                             f"{tuple(input_shape)}")
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self._build_feed_forward(input_shape, self.hidden_units)

    def call(self, x):
        normed = self.attention_norm(x)
        x = x + self.attention(normed, normed, use_causal_mask=True)
        return x + self._feed_forward(x)

    def keys_values(self, x):
        """The keys and values (batch, T, heads, key_dim) this block computes for input x."""
        normed = self.attention_norm(x)
        return self.attention._key_dense(normed), self.attention._value_dense(normed)

    def step(self, x, keys, values):
        """x (batch, 1, d), the new position; keys and values of the earlier positions ->
        (output (batch, 1, d), keys, values with the new position appended)."""
        normed = self.attention_norm(x)
        keys = ops.concatenate([keys, self.attention._key_dense(normed)], axis=1)
        values = ops.concatenate([values, self.attention._value_dense(normed)], axis=1)
        x = x + _attend(self.attention, self.attention._query_dense(normed), keys, values)
        return x + self._feed_forward(x), keys, values

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="mmcourse")
class GatedCrossAttention(_FeedForward, keras.layers.Layer):
    """Flamingo's gated cross-attention, ``layer(text_hidden, image_tokens)``:

        x = text_hidden + tanh(alpha) * MHA(LN(text_hidden), image_tokens)
        y = x + tanh(alpha_ff) * FFN(LN(x))

    ``alpha`` and ``alpha_ff`` are trainable scalars initialised to 0, so a new layer returns
    ``text_hidden`` exactly and a pre-trained decoder with these layers inserted starts as
    the decoder. text_hidden (batch, T, d), image_tokens (batch, N, d_image); the output is
    (batch, T, d). ``hidden_units`` of the feed-forward part defaults to 4 d.
    Introduced in notebook 08.
    """

    def __init__(self, num_heads: int, key_dim: int, hidden_units: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = positive_int("num_heads", num_heads)
        self.key_dim = positive_int("key_dim", key_dim)
        self.hidden_units = None if hidden_units is None else positive_int("hidden_units",
                                                                           hidden_units)
        self.query_norm = keras.layers.LayerNormalization(name="query_norm",
                                                          dtype=self.dtype_policy)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="attention",
                                                         dtype=self.dtype_policy)

    def build(self, text_hidden_shape, image_tokens_shape):
        for name, shape in (("text_hidden", text_hidden_shape),
                            ("image_tokens", image_tokens_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(f"GatedCrossAttention needs {name} (batch, T, d) with known "
                                 f"d, got {tuple(shape)}")
        self.query_norm.build(text_hidden_shape)
        self.attention.build(text_hidden_shape, image_tokens_shape)
        self._build_feed_forward(text_hidden_shape,
                                 self.hidden_units or 4 * text_hidden_shape[-1])
        self.alpha = self.add_weight(shape=(), initializer="zeros", name="alpha")
        self.alpha_ff = self.add_weight(shape=(), initializer="zeros", name="alpha_ff")

    def _gated(self, text_hidden, attended):
        x = text_hidden + ops.tanh(self.alpha) * attended
        return x + ops.tanh(self.alpha_ff) * self._feed_forward(x)

    def call(self, text_hidden, image_tokens):
        return self._gated(text_hidden,
                           self.attention(self.query_norm(text_hidden), image_tokens))

    def image_keys_values(self, image_tokens):
        """The keys and values (batch, N, heads, key_dim) of the image tokens, computed once
        per image for KV-cache decoding."""
        return self.attention._key_dense(image_tokens), self.attention._value_dense(image_tokens)

    def step(self, text_hidden, keys, values):
        """The layer on text_hidden with the image's keys and values already computed."""
        query = self.attention._query_dense(self.query_norm(text_hidden))
        return self._gated(text_hidden, _attend(self.attention, query, keys, values))

    def compute_output_shape(self, text_hidden_shape, image_tokens_shape):
        return tuple(text_hidden_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="mmcourse")
class GridCoordinates(keras.layers.Layer):
    """ViT tokens (batch, 1 + H W, d), a class token then a square grid of patches in
    row-major order -> (batch, 1 + H W, d + 2 + 4 f): each patch token followed by its
    centre's coordinates ``relations.coordinate_features(H, W, frequencies)`` (notebook
    06), the class token by zeros. A CLIP trained on left-to-right captions keeps little of
    where things are; these fixed features give it back. Introduced in notebook 08."""

    def __init__(self, frequencies: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.frequencies = int(frequencies)

    def _features(self, input_shape):
        side = math.isqrt((input_shape[1] or 0) - 1)
        if len(input_shape) != 3 or side < 1 or side * side + 1 != input_shape[1]:
            raise ValueError(f"GridCoordinates needs a class token and a square grid of "
                             f"patch tokens (batch, 1 + H W, d), got {tuple(input_shape)}")
        grid = coordinate_features(side, side, self.frequencies)
        return np.concatenate([np.zeros((1, grid.shape[1]), np.float32), grid])

    def build(self, input_shape):
        self.features = self._features(input_shape)

    def call(self, tokens):
        features = ops.cast(ops.convert_to_tensor(self.features), tokens.dtype)[None]
        return ops.concatenate([tokens, ops.broadcast_to(
            features, (ops.shape(tokens)[0], *self.features.shape))], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[2] + self._features(input_shape).shape[1])

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies}


@keras.saving.register_keras_serializable(package="mmcourse")
class DropPrefix(keras.layers.Layer):
    """``layer(hidden, prefix)``: hidden (batch, P + L, d) -> its last L positions, the text
    after a prefix of P visual tokens. Introduced in notebook 08."""

    def call(self, hidden, prefix):
        return hidden[:, prefix.shape[1]:]

    def compute_output_shape(self, hidden_shape, prefix_shape):
        length = None if hidden_shape[1] is None else hidden_shape[1] - prefix_shape[1]
        return (hidden_shape[0], length, hidden_shape[2])

