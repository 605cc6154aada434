"""Fusion layers: how an image vector x and a text vector y become one vector z (notebook 04).

This module imports Keras at module level, on purpose: it defines Keras layer subclasses
that must be registered for ``.keras`` saving. That keeps ``import mmcourse`` light
because nothing that ``import mmcourse`` imports (only ``mmcourse.paths`` and
``mmcourse.seeding``) imports this module; ``mmcourse.matcher.model`` imports it inside its
functions. Import it (or call ``mmcourse.matcher.io.load_matcher``) before
``keras.saving.load_model`` so the classes are registered.

Notation: x in R^{d_img} (image), y in R^{d_txt} (text), z in R^{d_out}; W and b are
learned weights and biases; [a; b] is concatenation and the circle ⊙ the element-wise
product. Each layer's docstring gives its formula and its parameter cost, and
``parameter_count(fusion, d_img, d_txt, d_out)`` evaluates that formula.

| name       | layer                   | output width         | parameters                                 |
|------------|-------------------------|----------------------|--------------------------------------------|
| image      | (none: z = x)           | d_img                | 0                                          |
| text       | (none: z = y)           | d_txt                | 0                                          |
| concat     | ``Concatenate``         | d_img + d_txt        | 0                                          |
| sum        | ``SumFusion``           | d_out                | (d_img + d_txt + 2) d_out                  |
| multiply   | ``MultiplyFusion``      | d_out                | (d_img + d_txt + 2) d_out                  |
| gated      | ``GatedFusion``         | d_out                | 2 (d_img + d_txt) d_out + 3 d_out          |
| film       | ``FiLM``                | d_img (per region)   | 2 (d_txt + 1) d_img                        |
| bilinear   | ``TensorFusion``        | d_out                | ((d_img + 1)(d_txt + 1) + 1) d_out         |
| lowrank    | ``LowRankFusion``       | d_out                | r (d_img + d_txt + 2) d_out + r + d_out    |
| attention  | ``CrossAttentionFusion``| d_out + d_txt        | (d_txt + 2 d_img' + 3) h k + (h k + 1) d_out |

For ``attention``, d_img' = d_img + 2 when the regions get their (row, column)
coordinates, h is the number of heads and k the key width per head.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from mmcourse.names import FUSION_METHODS

#: The fusion methods this module has formulas for, in notebook 04's order.
FUSIONS = FUSION_METHODS


def _check_width(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _pair(layer: keras.layers.Layer, input_shape) -> tuple:
    """(image_shape, text_shape) from a layer's list of two input shapes."""
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not all(
            isinstance(s, (list, tuple)) for s in input_shape):
        raise ValueError(f"{type(layer).__name__} takes a list [image_features, text_vector], "
                         f"got input shape {input_shape!r}")
    image_shape, text_shape = (tuple(s) for s in input_shape)
    if len(text_shape) != 2 or text_shape[-1] is None:
        raise ValueError(f"{type(layer).__name__}: the text input must be (batch, d_txt), "
                         f"got {text_shape}")
    if image_shape[-1] is None:
        raise ValueError(f"{type(layer).__name__}: the image input needs a known last axis, "
                         f"got {image_shape}")
    return image_shape, text_shape


class _PairToUnits(keras.layers.Layer):
    """Base for fusions of (image vector, text vector) into one (batch, units) vector."""

    def __init__(self, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_width("units", units)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class _ProjectedPair(_PairToUnits):
    """Base for fusions that project x and y to d_out first: x' = W_x x + b_x, y' = W_y y + b_y."""

    def build(self, input_shape):
        image_shape, text_shape = _pair(self, input_shape)
        if len(image_shape) != 2:
            raise ValueError(f"{type(self).__name__}: the image input must be a vector "
                             f"(batch, d_img), got {image_shape}")
        self.image_kernel = self.add_weight(shape=(image_shape[-1], self.units),
                                            initializer="glorot_uniform", name="image_kernel")
        self.image_bias = self.add_weight(shape=(self.units,), initializer="zeros",
                                          name="image_bias")
        self.text_kernel = self.add_weight(shape=(text_shape[-1], self.units),
                                           initializer="glorot_uniform", name="text_kernel")
        self.text_bias = self.add_weight(shape=(self.units,), initializer="zeros",
                                         name="text_bias")

    def _project(self, inputs):
        image_vector, text_vector = inputs
        return (ops.matmul(image_vector, self.image_kernel) + self.image_bias,
                ops.matmul(text_vector, self.text_kernel) + self.text_bias)


@keras.saving.register_keras_serializable(package="mmcourse")
class SumFusion(_ProjectedPair):
    """Sum of projections: z = (W_x x + b_x) + (W_y y + b_y).

    Parameters: (d_img + d_txt + 2) d_out. Exactly as expressive as concatenation followed
    by a Dense layer (W [x; y] = W_x x + W_y y): additive in the modalities.
    Introduced in notebook 04.
    """

    def call(self, inputs):
        image_part, text_part = self._project(inputs)
        return image_part + text_part


@keras.saving.register_keras_serializable(package="mmcourse")
class MultiplyFusion(_ProjectedPair):
    """Element-wise product of projections: z = (W_x x + b_x) ⊙ (W_y y + b_y).

    The two vectors must have the same width, so each is projected to d_out first.
    Parameters: (d_img + d_txt + 2) d_out. Each z_i is a rank-1 bilinear form in (x, y),
    so z can express agreement ("the image says red and the text says red") directly:
    a low-rank bilinear pooling (Kim et al. 2017). Introduced in notebook 04.
    """

    def __init__(self, units: int = 32, activation=None, **kwargs):
        super().__init__(units, **kwargs)
        self.activation = keras.activations.get(activation)

    def call(self, inputs):
        image_part, text_part = self._project(inputs)
        return self.activation(image_part) * self.activation(text_part)

    def get_config(self):
        return {**super().get_config(),
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="mmcourse")
class GatedFusion(_PairToUnits):
    """Gated multimodal unit (Arevalo et al. 2017):

        h_x = tanh(W_x x + b_x),  h_y = tanh(W_y y + b_y),
        g = sigmoid(W_g [x; y] + b_g),  z = g ⊙ h_x + (1 - g) ⊙ h_y.

    The gate g decides, per feature and per example, how much each modality contributes.
    Parameters: 2 (d_img + d_txt) d_out + 3 d_out. Introduced in notebook 04.
    """

    def build(self, input_shape):
        image_shape, text_shape = _pair(self, input_shape)
        d_img, d_txt = image_shape[-1], text_shape[-1]
        glorot, zeros = "glorot_uniform", "zeros"
        self.image_kernel = self.add_weight(shape=(d_img, self.units), initializer=glorot,
                                            name="image_kernel")
        self.image_bias = self.add_weight(shape=(self.units,), initializer=zeros,
                                          name="image_bias")
        self.text_kernel = self.add_weight(shape=(d_txt, self.units), initializer=glorot,
                                           name="text_kernel")
        self.text_bias = self.add_weight(shape=(self.units,), initializer=zeros,
                                         name="text_bias")
        self.gate_kernel = self.add_weight(shape=(d_img + d_txt, self.units),
                                           initializer=glorot, name="gate_kernel")
        self.gate_bias = self.add_weight(shape=(self.units,), initializer=zeros,
                                         name="gate_bias")

    def call(self, inputs):
        image_vector, text_vector = inputs
        h_image = ops.tanh(ops.matmul(image_vector, self.image_kernel) + self.image_bias)
        h_text = ops.tanh(ops.matmul(text_vector, self.text_kernel) + self.text_bias)
        both = ops.concatenate([image_vector, text_vector], axis=-1)
        gate = ops.sigmoid(ops.matmul(both, self.gate_kernel) + self.gate_bias)
        return gate * h_image + (1.0 - gate) * h_text


@keras.saving.register_keras_serializable(package="mmcourse")
class FiLM(keras.layers.Layer):
    """Feature-wise linear modulation of image features by the text (Perez et al. 2018):

        gamma = 1 + W_g y + b_g,  beta = W_b y + b_b,  FiLM(F) = gamma ⊙ F + beta,

    applied to every region of an image grid F (batch, H, W, d_img), or to an image vector
    (batch, d_img); gamma and beta (d_img each) are broadcast over the regions. The "1 +"
    starts the layer near the identity. The text scales and shifts each visual feature: it
    can switch a "red" detector up and a "blue" detector off before the regions are pooled.
    Output: the shape of the image input. Parameters: 2 (d_txt + 1) d_img.
    Introduced in notebook 04.
    """

    def build(self, input_shape):
        image_shape, text_shape = _pair(self, input_shape)
        d_img, d_txt = image_shape[-1], text_shape[-1]
        self.gamma_kernel = self.add_weight(shape=(d_txt, d_img), initializer="glorot_uniform",
                                            name="gamma_kernel")
        self.gamma_bias = self.add_weight(shape=(d_img,), initializer="zeros", name="gamma_bias")
        self.beta_kernel = self.add_weight(shape=(d_txt, d_img), initializer="glorot_uniform",
                                           name="beta_kernel")
        self.beta_bias = self.add_weight(shape=(d_img,), initializer="zeros", name="beta_bias")

    def call(self, inputs):
        features, text_vector = inputs
        gamma = 1.0 + ops.matmul(text_vector, self.gamma_kernel) + self.gamma_bias
        beta = ops.matmul(text_vector, self.beta_kernel) + self.beta_bias
        for _ in range(len(features.shape) - 2):  # (B, C) -> (B, 1, 1, C) for a grid
            gamma = ops.expand_dims(gamma, 1)
            beta = ops.expand_dims(beta, 1)
        return gamma * features + beta

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package="mmcourse")
class TensorFusion(_PairToUnits):
    """Tensor (bilinear) fusion (Zadeh et al. 2017), followed by a linear map to d_out:

        T = [1; x] ⊗ [1; y]  ((d_img + 1) x (d_txt + 1): x, y and every product x_i y_j),
        z = W vec(T) + b.

    The constant 1 keeps the unimodal terms next to all pairwise interactions.
    Parameters: ((d_img + 1)(d_txt + 1) + 1) d_out: quadratic in the widths, the price
    of writing every interaction out. Introduced in notebook 04.
    """

    def build(self, input_shape):
        image_shape, text_shape = _pair(self, input_shape)
        self.d_img, self.d_txt = image_shape[-1], text_shape[-1]
        self.kernel = self.add_weight(shape=((self.d_img + 1) * (self.d_txt + 1), self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        image_vector, text_vector = inputs
        ones = ops.ones_like(image_vector[:, :1])
        image_1 = ops.concatenate([ones, image_vector], axis=-1)  # [1; x]
        text_1 = ops.concatenate([ones, text_vector], axis=-1)  # [1; y]
        outer = ops.einsum("bi,bj->bij", image_1, text_1)
        flat = ops.reshape(outer, (-1, (self.d_img + 1) * (self.d_txt + 1)))
        return ops.matmul(flat, self.kernel) + self.bias


@keras.saving.register_keras_serializable(package="mmcourse")
class LowRankFusion(_PairToUnits):
    """Low-rank multimodal fusion (Liu et al. 2018): the tensor fusion weight, written as
    a sum of ``rank`` = r outer products, so the big tensor is never formed:

        z = sum_{i=1..r} lambda_i (W_x^(i) [x; 1]) ⊙ (W_y^(i) [y; 1]) + b.

    Parameters: r (d_img + 1) d_out + r (d_txt + 1) d_out + r + d_out
    = r (d_img + d_txt + 2) d_out + r + d_out: linear in the widths, unlike ``TensorFusion``.
    Introduced in notebook 04.
    """

    def __init__(self, units: int = 32, rank: int = 4, **kwargs):
        super().__init__(units, **kwargs)
        self.rank = _check_width("rank", rank)

    def build(self, input_shape):
        image_shape, text_shape = _pair(self, input_shape)
        d_img, d_txt = image_shape[-1], text_shape[-1]
        self.image_factors = self.add_weight(shape=(self.rank, d_img + 1, self.units),
                                             initializer="glorot_uniform", name="image_factors")
        self.text_factors = self.add_weight(shape=(self.rank, d_txt + 1, self.units),
                                            initializer="glorot_uniform", name="text_factors")
        self.rank_weights = self.add_weight(shape=(self.rank,), initializer="glorot_uniform",
                                            name="rank_weights")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        image_vector, text_vector = inputs
        ones = ops.ones_like(image_vector[:, :1])
        image_1 = ops.concatenate([image_vector, ones], axis=-1)
        text_1 = ops.concatenate([text_vector, ones], axis=-1)
        image_parts = ops.einsum("bi,rio->bro", image_1, self.image_factors)
        text_parts = ops.einsum("bj,rjo->bro", text_1, self.text_factors)
        return ops.einsum("bro,r->bo", image_parts * text_parts, self.rank_weights) + self.bias

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}


@keras.saving.register_keras_serializable(package="mmcourse")
class CrossAttentionFusion(keras.layers.Layer):
    """The text attends over the image regions (scaled dot-product attention, h heads):

        q = W_q y + b_q,  K = G W_k + b_k,  V = G W_v + b_v   (per head: width k),
        a = softmax(q K^T / sqrt(k)) over the N regions,  o = a V,
        z = [W_o o + b_o; y].

    G (batch, N, d_img') holds the N = H W region features of the CNN grid, with their
    (row, column) coordinates in [-1, 1] appended when ``coordinates`` is true
    (d_img' = d_img + 2), so the attention can also use where a region is. The text
    vector is passed through next to the attended image summary, so the head can compare
    the two. Output width d_out + d_txt.
    Parameters: (d_txt + 1) h k + 2 (d_img' + 1) h k + (h k + 1) d_out.
    ``attention_weights(inputs)`` returns a (batch, h, H, W) map for plotting.
    Introduced in notebook 04.
    """

    def __init__(self, units: int = 32, num_heads: int = 2, key_dim: int = 16,
                 coordinates: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_width("units", units)
        self.num_heads = _check_width("num_heads", num_heads)
        self.key_dim = _check_width("key_dim", key_dim)
        self.coordinates = bool(coordinates)

    def build(self, input_shape):
        grid_shape, text_shape = _pair(self, input_shape)
        if len(grid_shape) != 4 or None in grid_shape[1:]:
            raise ValueError(f"CrossAttentionFusion: the image input must be a region grid "
                             f"(batch, H, W, d_img) with known H, W, got {grid_shape}")
        _, self.height, self.width, d_img = grid_shape
        d_regions = d_img + 2 if self.coordinates else d_img
        width = self.num_heads * self.key_dim
        glorot, zeros = "glorot_uniform", "zeros"
        self.query_kernel = self.add_weight(shape=(text_shape[-1], width), initializer=glorot,
                                            name="query_kernel")
        self.query_bias = self.add_weight(shape=(width,), initializer=zeros, name="query_bias")
        self.key_kernel = self.add_weight(shape=(d_regions, width), initializer=glorot,
                                          name="key_kernel")
        self.key_bias = self.add_weight(shape=(width,), initializer=zeros, name="key_bias")
        self.value_kernel = self.add_weight(shape=(d_regions, width), initializer=glorot,
                                            name="value_kernel")
        self.value_bias = self.add_weight(shape=(width,), initializer=zeros, name="value_bias")
        self.output_kernel = self.add_weight(shape=(width, self.units), initializer=glorot,
                                             name="output_kernel")
        self.output_bias = self.add_weight(shape=(self.units,), initializer=zeros,
                                           name="output_bias")

    def _regions(self, grid):
        regions = ops.reshape(grid, (-1, self.height * self.width, grid.shape[-1]))
        if not self.coordinates:
            return regions
        rows = ops.linspace(-1.0, 1.0, self.height)
        cols = ops.linspace(-1.0, 1.0, self.width)
        coords = ops.stack([ops.repeat(rows, self.width), ops.tile(cols, [self.height])], axis=-1)
        coords = ops.cast(coords, regions.dtype)
        coords = ops.broadcast_to(ops.expand_dims(coords, 0),
                                  (ops.shape(regions)[0], self.height * self.width, 2))
        return ops.concatenate([regions, coords], axis=-1)

    def _attend(self, inputs):
        grid, text_vector = inputs
        regions = self._regions(grid)
        heads = (-1, self.num_heads, self.key_dim)
        query = ops.reshape(ops.matmul(text_vector, self.query_kernel) + self.query_bias, heads)
        n = self.height * self.width
        keys = ops.reshape(ops.matmul(regions, self.key_kernel) + self.key_bias,
                           (-1, n, self.num_heads, self.key_dim))
        values = ops.reshape(ops.matmul(regions, self.value_kernel) + self.value_bias,
                             (-1, n, self.num_heads, self.key_dim))
        scores = ops.einsum("bhk,bnhk->bhn", query, keys) / math.sqrt(self.key_dim)
        weights = ops.softmax(scores, axis=-1)
        attended = ops.einsum("bhn,bnhk->bhk", weights, values)
        return weights, ops.reshape(attended, (-1, self.num_heads * self.key_dim))

    def call(self, inputs):
        _, text_vector = inputs
        _, attended = self._attend(inputs)
        summary = ops.matmul(attended, self.output_kernel) + self.output_bias
        return ops.concatenate([summary, text_vector], axis=-1)

    def attention_weights(self, inputs):
        """The attention map, (batch, num_heads, H, W): where each head looked."""
        weights, _ = self._attend(inputs)
        return ops.reshape(weights, (-1, self.num_heads, self.height, self.width))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units + input_shape[1][-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads,
                "key_dim": self.key_dim, "coordinates": self.coordinates}


def parameter_count(fusion: str, d_img: int, d_txt: int, d_out: int, rank: int = 4,
                    num_heads: int = 2, key_dim: int = 16, coordinates: bool = True) -> int:
    """The parameter cost of a fusion method, from the formulas in the docstrings
    (the fusion layer alone, without encoders or head). Introduced in notebook 04."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
    if fusion in ("image", "text", "concat"):
        return 0
    if fusion in ("sum", "multiply"):
        return (d_img + d_txt + 2) * d_out
    if fusion == "gated":
        return 2 * (d_img + d_txt) * d_out + 3 * d_out
    if fusion == "film":
        return 2 * (d_txt + 1) * d_img
    if fusion == "bilinear":
        return ((d_img + 1) * (d_txt + 1) + 1) * d_out
    if fusion == "lowrank":
        return rank * (d_img + d_txt + 2) * d_out + rank + d_out
    hk = num_heads * key_dim  # attention
    d_regions = d_img + 2 if coordinates else d_img
    return (d_txt + 1) * hk + 2 * (d_regions + 1) * hk + (hk + 1) * d_out


def fusion_output_width(fusion: str, d_img: int, d_txt: int, d_out: int) -> int:
    """The width of z for a fusion method (see the table in the module docstring)."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
    return {"image": d_img, "text": d_txt, "concat": d_img + d_txt, "film": d_img,
            "attention": d_out + d_txt}.get(fusion, d_out)
