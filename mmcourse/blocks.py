"""Layers for relational reasoning: region tokens with coordinates, a pre-norm transformer
block, and the relation network's pair module (notebook 06).

Like ``mmcourse.matcher.fusion``, this module imports Keras at module level, because it defines
layer subclasses registered for ``.keras`` saving; ``mmcourse.matcher.model`` imports it inside
its functions, so ``import mmcourse`` stays light. ``mmcourse.matcher.model.build_model`` puts
these layers together as the fusion names ``cnn_mlp``, ``relation_network`` and
``transformer``.

Notation: a CNN turns the image into an H x W grid of region features; each region
becomes one token o_i (n = H W tokens); q is the question vector.

- ``RegionTokens``: o_i = [features_i; coordinates_i], where the coordinates of region i
  are its centre (x, y) in [-1, 1] and their sines and cosines at a few frequencies
  (``coordinate_features``). Without them, attention and the relation network's sum are
  blind to where a region is.
- ``TransformerBlock``: x <- x + MHA(LN(x), LN(context)); x <- x + FFN(LN(x)), with
  context = x for self-attention (regions look at regions) and context = the regions for
  cross-attention (the question looks at the regions).
- ``RelationModule``: RN(O, q) = sum over all pairs (i, j) of g([o_i; o_j; q]), the
  relation network of Santoro et al. (2017). Its cost grows with the n^2 pairs.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmcourse.configs import positive_int


def coordinate_features(height: int, width: int, frequencies: int = 3) -> np.ndarray:
    """Coordinates of the centres of an H x W grid of regions, float32 (H W, 2 + 4 f).

    Row-major over the grid (region i = row * width + column, as ``reshape`` orders them).
    Columns: x (left -1 to right +1), y (top -1 to bottom +1), then for k = 0 .. f - 1:
    sin(2^k pi x), cos(2^k pi x), sin(2^k pi y), cos(2^k pi y). The sines and cosines let a
    dot product compare positions at several scales (as in the transformer's positional
    encoding). Introduced in notebook 06.
    """
    height, width = positive_int("height", height), positive_int("width", width)
    if isinstance(frequencies, bool) or not isinstance(frequencies, (int, np.integer)) \
            or frequencies < 0:
        raise ValueError(f"frequencies must be an int >= 0, got {frequencies!r}")
    centres = lambda n: (np.arange(n) + 0.5) / n * 2 - 1  # noqa: E731
    y, x = np.meshgrid(centres(height), centres(width), indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)
    columns = [x, y]
    for k in range(frequencies):
        scale = np.pi * 2**k
        columns += [np.sin(scale * x), np.cos(scale * x), np.sin(scale * y), np.cos(scale * y)]
    return np.stack(columns, axis=-1).astype(np.float32)


def relation_pair_count(height: int, width: int) -> int:
    """The number of ordered region pairs (i, j) a relation network evaluates g on:
    n^2 with n = H W (pairs with i = j included, as in Santoro et al. 2017).
    Introduced in notebook 06."""
    n = positive_int("height", height) * positive_int("width", width)
    return n * n


@keras.saving.register_keras_serializable(package="mmcourse")
class CoordinateChannels(keras.layers.Layer):
    """Append two channels to an image batch (batch, H, W, C) -> (batch, H, W, C + 2): every
    pixel's x and y in [-1, 1] ("CoordConv", Liu et al. 2018). The convolutions after it can
    then say *where* a feature is, to the pixel, not only *what* it is. No weights.
    Introduced in notebook 06."""

    def call(self, images):
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(f"CoordinateChannels needs a known height and width, got "
                             f"{tuple(images.shape)}")
        y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width),
                           indexing="ij")
        channels = ops.convert_to_tensor(np.stack([x, y], axis=-1), dtype=images.dtype)
        channels = ops.broadcast_to(channels[None], (ops.shape(images)[0], height, width, 2))
        return ops.concatenate([images, channels], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


@keras.saving.register_keras_serializable(package="mmcourse")
class RegionTokens(keras.layers.Layer):
    """A region grid (batch, H, W, C) -> tokens (batch, H W, C + 2 + 4 f): each region's
    features followed by its ``coordinate_features``. No weights. Introduced in notebook 06.
    """

    def __init__(self, frequencies: int = 3, **kwargs):
        super().__init__(**kwargs)
        if isinstance(frequencies, bool) or not isinstance(frequencies, int) or frequencies < 0:
            raise ValueError(f"frequencies must be an int >= 0, got {frequencies!r}")
        self.frequencies = frequencies

    def _grid(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(f"RegionTokens needs a region grid (batch, H, W, C) with known "
                             f"H, W and C, got {tuple(input_shape)}")
        return input_shape[1:]

    def call(self, grid):
        height, width, channels = self._grid(grid.shape)
        tokens = ops.reshape(grid, (-1, height * width, channels))
        coordinates = ops.convert_to_tensor(
            coordinate_features(height, width, self.frequencies), dtype=tokens.dtype)
        coordinates = ops.broadcast_to(coordinates[None],
                                       (ops.shape(tokens)[0], *coordinates.shape))
        return ops.concatenate([tokens, coordinates], axis=-1)

    def compute_output_shape(self, input_shape):
        height, width, channels = self._grid(input_shape)
        return (input_shape[0], height * width, channels + 2 + 4 * self.frequencies)

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies}


@keras.saving.register_keras_serializable(package="mmcourse")
class TransformerBlock(keras.layers.Layer):
    """A pre-norm transformer block (as in ViT and GPT-2):

        x <- x + MHA(LN(x), LN(context)),   x <- x + W_2 relu(W_1 LN(x) + b_1) + b_2

    ``block(x)`` is self-attention (context = x); ``block(x, context)`` is cross-attention
    (queries from x, keys and values from context). x is (batch, T, d) and the output has
    the same shape. ``keras.layers.MultiHeadAttention(num_heads, key_dim)`` does the
    attention (notebook 06 rebuilds it by hand). ``attention_scores(x, context)`` returns
    the weights (batch, num_heads, T, T_context). Introduced in notebook 06.
    """

    def __init__(self, num_heads: int = 4, key_dim: int = 16, hidden_units: int = 128,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = positive_int("num_heads", num_heads)
        self.key_dim = positive_int("key_dim", key_dim)
        self.hidden_units = positive_int("hidden_units", hidden_units)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.supports_masking = True
        dtype = self.dtype_policy
        self.query_norm = keras.layers.LayerNormalization(name="query_norm", dtype=dtype)
        self.context_norm = keras.layers.LayerNormalization(name="context_norm", dtype=dtype)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dropout=dropout,
                                                         name="attention", dtype=dtype)
        self.hidden_norm = keras.layers.LayerNormalization(name="hidden_norm", dtype=dtype)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden",
                                         dtype=dtype)
        self.out = None  # built in build(): Dense(d), d known from the input

    def build(self, x_shape, context_shape=None):
        if len(x_shape) != 3 or x_shape[-1] is None:
            raise ValueError(f"TransformerBlock needs tokens (batch, T, d) with known d, got "
                             f"{tuple(x_shape)}")
        self.query_norm.build(x_shape)
        if context_shape is not None:  # cross-attention: the context gets its own norm
            self.context_norm.build(context_shape)
        self.attention.build(x_shape, x_shape if context_shape is None else context_shape)
        self.hidden_norm.build(x_shape)
        self.hidden.build(x_shape)
        self.out = keras.layers.Dense(x_shape[-1], name="out", dtype=self.dtype_policy)
        self.out.build((*x_shape[:-1], self.hidden_units))

    def _attend(self, x, context, training=None):
        query = self.query_norm(x)
        source = query if context is None else self.context_norm(context)
        return self.attention(query, source, return_attention_scores=True, training=training)

    def call(self, x, context=None, training=None, mask=None, x_mask=None):
        # A padding mask on x (from an Embedding(mask_zero=True)) rides on the normalised
        # tokens, and MultiHeadAttention applies it to its keys itself; Keras passes it here
        # as ``mask`` or ``x_mask`` (saved models record those arguments), and it passes on.
        attended, _ = self._attend(x, context, training)
        x = x + attended
        return x + self.out(self.hidden(self.hidden_norm(x)))

    def attention_scores(self, x, context=None):
        """The attention weights (batch, num_heads, T, T_context) for inputs x, context."""
        return self._attend(x, context)[1]

    def compute_output_shape(self, x_shape, context_shape=None):
        return tuple(x_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="mmcourse")
class RelationModule(keras.layers.Layer):
    """The relation network's pair module (Santoro et al. 2017):

        RN(O, q) = sum_{i, j} g([o_i; o_j; q]),   g = an MLP of ``depth`` ReLU layers

    over all n^2 ordered pairs of the n tokens O (batch, n, d) and a question vector q
    (batch, d_q); output (batch, units). g's first layer is split, W [o_i; o_j; q] =
    W_i o_i + W_j o_j + W_q q, so it costs O(n d units) instead of O(n^2 d units); the
    other layers run on every pair, O(n^2 units^2). Parameters: (2 d + d_q + 1) units +
    (depth - 1)(units + 1) units. Introduced in notebook 06.
    """

    def __init__(self, units: int = 64, depth: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.depth = positive_int("depth", depth)
        self.pair_layers = [keras.layers.Dense(units, activation="relu", name=f"g{index}",
                                               dtype=self.dtype_policy)
                            for index in range(2, depth + 1)]

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"RelationModule takes [tokens, question], got input shape "
                             f"{input_shape!r}")
        tokens_shape, question_shape = (tuple(s) for s in input_shape)
        if len(tokens_shape) != 3 or len(question_shape) != 2:
            raise ValueError(f"RelationModule needs tokens (batch, n, d) and a question "
                             f"(batch, d_q), got {tokens_shape} and {question_shape}")
        d, d_q = tokens_shape[-1], question_shape[-1]
        self.first_kernel = self.add_weight(shape=(d, self.units), initializer="glorot_uniform",
                                            name="first_kernel")
        self.second_kernel = self.add_weight(shape=(d, self.units),
                                             initializer="glorot_uniform", name="second_kernel")
        self.question_kernel = self.add_weight(shape=(d_q, self.units),
                                               initializer="glorot_uniform",
                                               name="question_kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        for layer in self.pair_layers:
            layer.build((None, None, None, self.units))

    def pairs(self, inputs):
        """g on every pair before the sum: (batch, n, n, units)."""
        tokens, question = inputs
        if not self.built:
            self.build([tuple(tokens.shape), tuple(question.shape)])
            self.built = True
        first = ops.matmul(tokens, self.first_kernel)  # (B, n, units): the o_i part
        second = ops.matmul(tokens, self.second_kernel)  # the o_j part
        condition = ops.matmul(question, self.question_kernel) + self.bias  # (B, units)
        hidden = ops.relu(first[:, :, None, :] + second[:, None, :, :]
                          + condition[:, None, None, :])
        for layer in self.pair_layers:
            hidden = layer(hidden)
        return hidden

    def call(self, inputs):
        return ops.sum(self.pairs(inputs), axis=(1, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth}


def relation_module_parameters(d: int, d_question: int, units: int = 64, depth: int = 3) -> int:
    """``RelationModule``'s parameter count from its formula. Introduced in notebook 06."""
    return (2 * d + d_question + 1) * units + (depth - 1) * (units + 1) * units


def attention_cost(tokens: int, width: int) -> int:
    """Multiply-adds of one self-attention layer over ``tokens`` tokens of ``width``:
    4 T d^2 for the query, key, value and output projections plus 2 T^2 d for the scores
    and the weighted sum. Introduced in notebook 06."""
    return 4 * tokens * width * width + 2 * tokens * tokens * width


@keras.saving.register_keras_serializable(package="mmcourse")
class AnchoredAttention(keras.layers.Layer):
    """Cross-attention that ranks regions by their distance to an anchor it finds first.

    For every query token t and head h, with region centres p_j (``coordinate_features``'
    x and y):

        a_{h,t} = softmax_j(q'_{h,t} . k'_{h,j} / sqrt(d_k))       find the anchor
        pbar_{h,t} = sum_j a_{h,t,j} p_j                            where it is
        s_{h,t,j} = q_{h,t} . k_{h,j} / sqrt(d_k) + w_h(x_t) ||p_j - pbar_{h,t}||^2
        out_t = W_o [sum_j a_{h,t,j} v'_{h,j} ; sum_j softmax_j(s_{h,t,j}) v_{h,j}]_h + b_o

    Both attentions are read out: what the anchor attention finds (v') answers "what
    shape is the red object" directly, so it learns to find objects by name from the start,
    and the distance attention can build on it.

    The learned scale w_h(x_t) = x_t W_w + b_w (zero at the start) is negative when the
    question asks for the nearest object and positive for the furthest: a relative-position
    bias (as in T5 or Swin) whose origin the model chooses. A dot product of two tokens can
    only compare positions through their features; this layer hands it the distance.
    Wrapped like ``TransformerBlock``: pre-norm, residual, then a ReLU feed-forward.
    Inputs ``[x (batch, T, d), regions (batch, n, d_r)]`` with n = H W for ``grid_shape``
    (H, W); output (batch, T, d). ``weights_of(x, regions)`` returns (anchor weights,
    attention weights), both (batch, num_heads, T, n). Introduced in notebook 06.
    """

    def __init__(self, grid_shape, num_heads: int = 4, key_dim: int = 16,
                 hidden_units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.grid_shape = tuple(positive_int("grid_shape", g) for g in grid_shape)
        if len(self.grid_shape) != 2:
            raise ValueError(f"grid_shape must be (H, W), got {grid_shape!r}")
        self.num_heads = positive_int("num_heads", num_heads)
        self.key_dim = positive_int("key_dim", key_dim)
        self.hidden_units = positive_int("hidden_units", hidden_units)
        self.supports_masking = True
        dtype = self.dtype_policy
        self.query_norm = keras.layers.LayerNormalization(name="query_norm", dtype=dtype)
        self.context_norm = keras.layers.LayerNormalization(name="context_norm", dtype=dtype)
        self.hidden_norm = keras.layers.LayerNormalization(name="hidden_norm", dtype=dtype)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden",
                                         dtype=dtype)
        self.out = None

    def build(self, input_shape):
        x_shape, regions_shape = (tuple(s) for s in input_shape)
        n = self.grid_shape[0] * self.grid_shape[1]
        if len(x_shape) != 3 or len(regions_shape) != 3 or regions_shape[1] not in (None, n):
            raise ValueError(f"AnchoredAttention takes [x (batch, T, d), regions (batch, {n}, "
                             f"d_r)] for grid_shape {self.grid_shape}, got {x_shape} and "
                             f"{regions_shape}")
        d, d_regions, width = x_shape[-1], regions_shape[-1], self.num_heads * self.key_dim
        for name, rows in (("anchor_query", d), ("anchor_key", d_regions),
                           ("anchor_value", d_regions), ("query", d), ("key", d_regions),
                           ("value", d_regions)):
            setattr(self, f"{name}_kernel", self.add_weight(
                shape=(rows, width), initializer="glorot_uniform", name=f"{name}_kernel"))
            setattr(self, f"{name}_bias", self.add_weight(
                shape=(width,), initializer="zeros", name=f"{name}_bias"))
        self.scale_kernel = self.add_weight(shape=(d, self.num_heads), initializer="zeros",
                                            name="scale_kernel")
        self.scale_bias = self.add_weight(shape=(self.num_heads,), initializer="zeros",
                                          name="scale_bias")
        self.output_kernel = self.add_weight(shape=(2 * width, d),
                                             initializer="glorot_uniform", name="output_kernel")
        self.output_bias = self.add_weight(shape=(d,), initializer="zeros", name="output_bias")
        self.query_norm.build(x_shape)
        self.context_norm.build(regions_shape)
        self.hidden_norm.build(x_shape)
        self.hidden.build(x_shape)
        self.out = keras.layers.Dense(d, name="out", dtype=self.dtype_policy)
        self.out.build((*x_shape[:-1], self.hidden_units))

    def _heads(self, tokens, name):  # (B, T, d_in) -> (B, heads, T, key_dim)
        projected = (ops.matmul(tokens, getattr(self, f"{name}_kernel"))
                     + getattr(self, f"{name}_bias"))
        projected = ops.reshape(projected, (ops.shape(tokens)[0], -1, self.num_heads,
                                            self.key_dim))
        return ops.transpose(projected, (0, 2, 1, 3))

    def _scores(self, query, key):
        return ops.einsum("bhtk,bhnk->bhtn", query, key) / np.sqrt(self.key_dim)

    def _weights(self, x, regions):
        query, regions = self.query_norm(x), self.context_norm(regions)
        anchor = ops.softmax(self._scores(self._heads(query, "anchor_query"),
                                          self._heads(regions, "anchor_key")), axis=-1)
        centres = ops.convert_to_tensor(coordinate_features(*self.grid_shape, 0),
                                        dtype=anchor.dtype)  # (n, 2)
        anchor_position = ops.einsum("bhtn,nc->bhtc", anchor, centres)
        distance = ops.sum(ops.square(centres[None, None, None] - anchor_position[..., None, :]),
                           axis=-1)  # (B, heads, T, n)
        scale = ops.matmul(query, self.scale_kernel) + self.scale_bias  # (B, T, heads)
        scores = self._scores(self._heads(query, "query"), self._heads(regions, "key"))
        scores = scores + ops.transpose(scale, (0, 2, 1))[..., None] * distance
        return anchor, ops.softmax(scores, axis=-1), regions

    def weights_of(self, x, regions):
        """(anchor weights, attention weights), each (batch, num_heads, T, n)."""
        anchor, attention, _ = self._weights(x, regions)
        return anchor, attention

    def call(self, inputs, mask=None):
        x, regions = inputs
        anchor, attention, regions = self._weights(x, regions)
        both = []
        for weights, name in ((anchor, "anchor_value"), (attention, "value")):
            attended = ops.einsum("bhtn,bhnk->bthk", weights, self._heads(regions, name))
            both.append(ops.reshape(attended, (ops.shape(x)[0], -1,
                                               self.num_heads * self.key_dim)))
        x = x + ops.matmul(ops.concatenate(both, axis=-1), self.output_kernel) + self.output_bias
        return x + self.out(self.hidden(self.hidden_norm(x)))

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "grid_shape": self.grid_shape,
                "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units}
