"""The fusion layers of mmcourse.matcher.fusion: shapes, parameter counts against the docstring
formulas, values against NumPy references, bad input and .keras round trips."""

import warnings

import keras
import numpy as np
import pytest

from mmcourse.matcher import fusion
from mmcourse.matcher.io import load_matcher
from mmcourse.matcher.model import FUSIONS, build_model

D_IMG, D_TXT, D_OUT, BATCH = 5, 7, 3, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(BATCH, D_IMG)).astype("float32")
Y = RNG.normal(size=(BATCH, D_TXT)).astype("float32")
GRID = RNG.normal(size=(BATCH, 3, 4, D_IMG)).astype("float32")


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _weights(layer):
    return {w.path.split("/")[-1]: np.asarray(w.numpy()) for w in layer.weights}


def _randomize(layer, seed=1):
    """Non-trivial weights (biases included) so that references test every term."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.weights])


VECTOR_LAYERS = {
    "sum": lambda: fusion.SumFusion(D_OUT),
    "multiply": lambda: fusion.MultiplyFusion(D_OUT),
    "gated": lambda: fusion.GatedFusion(D_OUT),
    "bilinear": lambda: fusion.TensorFusion(D_OUT),
    "lowrank": lambda: fusion.LowRankFusion(D_OUT, rank=3),
}


@pytest.mark.parametrize("name", sorted(VECTOR_LAYERS))
def test_vector_fusion_shape_and_parameters(name):
    layer = VECTOR_LAYERS[name]()
    z = layer([X, Y])
    assert tuple(z.shape) == (BATCH, D_OUT)
    assert layer.compute_output_shape([(None, D_IMG), (None, D_TXT)]) == (None, D_OUT)
    assert layer.count_params() == fusion.parameter_count(name, D_IMG, D_TXT, D_OUT, rank=3)
    assert fusion.fusion_output_width(name, D_IMG, D_TXT, D_OUT) == D_OUT


def test_parameter_formulas_by_hand():
    # the docstring formulas, evaluated at d_img = d_txt = d_out = 32
    assert fusion.parameter_count("concat", 32, 32, 32) == 0
    assert fusion.parameter_count("multiply", 32, 32, 32) == 66 * 32
    assert fusion.parameter_count("bilinear", 32, 32, 32) == (33 * 33 + 1) * 32
    assert fusion.parameter_count("lowrank", 32, 32, 32, rank=4) == 4 * 66 * 32 + 4 + 32
    assert fusion.parameter_count("film", 32, 32, 32) == 2 * 33 * 32
    with pytest.raises(ValueError, match="valid names|choose from"):
        fusion.parameter_count("outer", 1, 1, 1)


def test_sum_and_multiply_match_numpy():
    for layer_class, combine in ((fusion.SumFusion, np.add), (fusion.MultiplyFusion, np.multiply)):
        layer = layer_class(D_OUT)
        layer([X, Y])
        _randomize(layer)
        w = _weights(layer)
        expected = combine(X @ w["image_kernel"] + w["image_bias"],
                           Y @ w["text_kernel"] + w["text_bias"])
        np.testing.assert_allclose(layer([X, Y]), expected, rtol=1e-5, atol=1e-5)


def test_multiply_applies_its_activation_to_each_projection_before_the_product():
    # z = tanh(x W_x + b_x) * tanh(y W_y + b_y), not tanh of the product (Kim et al. 2017)
    layer = fusion.MultiplyFusion(2, activation="tanh")
    image_kernel, image_bias = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.5, -1.0])
    text_kernel, text_bias = np.array([[3.0, -1.0]]), np.array([0.0, 1.0])
    x, y = np.array([[1.0, 1.0], [-2.0, 0.5]], "float32"), np.array([[1.0], [-1.0]], "float32")
    layer([x, y])
    layer.set_weights([image_kernel, image_bias, text_kernel, text_bias])
    image_part = np.array([[1.5, 1.0], [-1.5, 0.0]])  # x W_x + b_x, by hand
    text_part = np.array([[3.0, 0.0], [-3.0, 2.0]])  # y W_y + b_y, by hand
    np.testing.assert_allclose(x @ image_kernel + image_bias, image_part)
    np.testing.assert_allclose(y @ text_kernel + text_bias, text_part)
    expected = np.tanh(image_part) * np.tanh(text_part)
    np.testing.assert_allclose(layer([x, y]), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, np.tanh(image_part * text_part), atol=1e-3)


def test_sum_is_concatenation_followed_by_dense():
    layer = fusion.SumFusion(D_OUT)
    layer([X, Y])
    _randomize(layer)
    w = _weights(layer)
    dense = keras.layers.Dense(D_OUT)
    dense.build((None, D_IMG + D_TXT))
    dense.set_weights([np.concatenate([w["image_kernel"], w["text_kernel"]]),
                       w["image_bias"] + w["text_bias"]])
    np.testing.assert_allclose(layer([X, Y]), dense(np.concatenate([X, Y], axis=1)),
                               rtol=1e-5, atol=1e-5)


def test_gated_matches_numpy_and_mixes_the_modalities():
    layer = fusion.GatedFusion(D_OUT)
    layer([X, Y])
    _randomize(layer)
    w = _weights(layer)
    h_x = np.tanh(X @ w["image_kernel"] + w["image_bias"])
    h_y = np.tanh(Y @ w["text_kernel"] + w["text_bias"])
    gate = _sigmoid(np.concatenate([X, Y], axis=1) @ w["gate_kernel"] + w["gate_bias"])
    z = np.asarray(layer([X, Y]))
    np.testing.assert_allclose(z, gate * h_x + (1 - gate) * h_y, rtol=1e-5, atol=1e-5)
    # a convex combination: z lies between h_x and h_y
    assert np.all(z <= np.maximum(h_x, h_y) + 1e-6) and np.all(z >= np.minimum(h_x, h_y) - 1e-6)


@pytest.mark.parametrize("features", [X, GRID], ids=["vector", "grid"])
def test_film_matches_numpy(features):
    layer = fusion.FiLM()
    z = layer([features, Y])
    assert z.shape == features.shape
    assert layer.count_params() == fusion.parameter_count("film", D_IMG, D_TXT, D_OUT)
    _randomize(layer)
    w = _weights(layer)
    gamma = 1 + Y @ w["gamma_kernel"] + w["gamma_bias"]
    beta = Y @ w["beta_kernel"] + w["beta_bias"]
    if features.ndim == 4:
        gamma, beta = gamma[:, None, None, :], beta[:, None, None, :]
    np.testing.assert_allclose(layer([features, Y]), gamma * features + beta,
                               rtol=1e-5, atol=1e-5)


def test_film_with_zero_weights_is_the_identity():
    layer = fusion.FiLM()
    layer([GRID, Y])
    layer.set_weights([np.zeros(w.shape, "float32") for w in layer.weights])
    np.testing.assert_allclose(layer([GRID, Y]), GRID, atol=1e-6)


def test_tensor_fusion_matches_the_outer_product():
    layer = fusion.TensorFusion(D_OUT)
    layer([X, Y])
    _randomize(layer)
    w = _weights(layer)
    x1 = np.concatenate([np.ones((BATCH, 1)), X], axis=1)
    y1 = np.concatenate([np.ones((BATCH, 1)), Y], axis=1)
    outer = np.einsum("bi,bj->bij", x1, y1).reshape(BATCH, -1)
    np.testing.assert_allclose(layer([X, Y]), outer @ w["kernel"] + w["bias"],
                               rtol=1e-4, atol=1e-4)


def test_lowrank_is_tensor_fusion_with_a_factored_weight():
    rank = 3
    low = fusion.LowRankFusion(D_OUT, rank=rank)
    low([X, Y])
    _randomize(low)
    w = _weights(low)
    # reference by its own formula
    x1 = np.concatenate([X, np.ones((BATCH, 1))], axis=1)
    y1 = np.concatenate([Y, np.ones((BATCH, 1))], axis=1)
    parts = np.einsum("bi,rio->bro", x1, w["image_factors"]) * np.einsum(
        "bj,rjo->bro", y1, w["text_factors"])
    expected = np.einsum("bro,r->bo", parts, w["rank_weights"]) + w["bias"]
    np.testing.assert_allclose(low([X, Y]), expected, rtol=1e-4, atol=1e-4)
    # the same function as TensorFusion whose weight is the sum of r outer products
    full = np.einsum("r,rio,rjo->ijo", w["rank_weights"], w["image_factors"], w["text_factors"])
    full = np.roll(np.roll(full, 1, axis=0), 1, axis=1)  # [x; 1] order -> [1; x] order
    tensor = fusion.TensorFusion(D_OUT)
    tensor([X, Y])
    tensor.set_weights([full.reshape(-1, D_OUT), w["bias"]])
    np.testing.assert_allclose(tensor([X, Y]), low([X, Y]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("coordinates", [True, False])
def test_cross_attention_matches_numpy(coordinates):
    heads, key_dim = 2, 4
    layer = fusion.CrossAttentionFusion(D_OUT, num_heads=heads, key_dim=key_dim,
                                        coordinates=coordinates)
    z = layer([GRID, Y])
    assert tuple(z.shape) == (BATCH, D_OUT + D_TXT)
    assert layer.count_params() == fusion.parameter_count(
        "attention", D_IMG, D_TXT, D_OUT, num_heads=heads, key_dim=key_dim,
        coordinates=coordinates)
    _randomize(layer)
    w = _weights(layer)
    regions = GRID.reshape(BATCH, 12, D_IMG)
    if coordinates:
        rows, cols = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 4), indexing="ij")
        coords = np.stack([rows.ravel(), cols.ravel()], axis=-1)
        regions = np.concatenate([regions, np.broadcast_to(coords, (BATCH, 12, 2))], axis=-1)
    q = (Y @ w["query_kernel"] + w["query_bias"]).reshape(BATCH, heads, key_dim)
    k = (regions @ w["key_kernel"] + w["key_bias"]).reshape(BATCH, 12, heads, key_dim)
    v = (regions @ w["value_kernel"] + w["value_bias"]).reshape(BATCH, 12, heads, key_dim)
    scores = np.einsum("bhk,bnhk->bhn", q, k) / np.sqrt(key_dim)
    a = np.exp(scores - scores.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = np.einsum("bhn,bnhk->bhk", a, v).reshape(BATCH, heads * key_dim)
    expected = np.concatenate([o @ w["output_kernel"] + w["output_bias"], Y], axis=1)
    np.testing.assert_allclose(layer([GRID, Y]), expected, rtol=1e-4, atol=1e-4)
    maps = np.asarray(layer.attention_weights([GRID, Y]))
    assert maps.shape == (BATCH, heads, 3, 4)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(maps.reshape(BATCH, heads, 12), a, rtol=1e-4, atol=1e-5)


def test_bad_construction_and_inputs():
    with pytest.raises(ValueError, match="units must be a positive int"):
        fusion.MultiplyFusion(0)
    with pytest.raises(ValueError, match="rank must be a positive int"):
        fusion.LowRankFusion(4, rank=0)
    with pytest.raises(ValueError, match=r"takes a list \[image_features, text_vector\]"):
        fusion.GatedFusion(4)(X)
    with pytest.raises(ValueError, match="must be a region grid"):
        fusion.CrossAttentionFusion(4)([X, Y])
    with pytest.raises(ValueError, match="text input must be"):
        fusion.FiLM()([GRID, GRID])
    with pytest.raises(ValueError, match="image input must be a vector"):
        fusion.SumFusion(4)([GRID, Y])


CUSTOM = ["multiply", "sum", "gated", "film", "bilinear", "lowrank", "attention"]


@pytest.mark.parametrize("name", CUSTOM)
def test_model_with_each_custom_layer_saves_and_loads_safely(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model("match", name, vocabulary_size=20, sequence_length=6,
                        filters=(4, 8), embedding_dim=4, text_units=4, fusion_units=4,
                        hidden_units=4)
    images = RNG.random((3, 64, 64, 3), dtype=np.float32)
    tokens = RNG.integers(0, 20, (3, 6)).astype("int32")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    with warnings.catch_warnings():  # an unfitted optimizer has no variables to restore
        warnings.simplefilter("ignore", UserWarning)
        loaded = load_matcher(path)
    assert loaded.get_layer("fusion").__class__ is model.get_layer("fusion").__class__
    np.testing.assert_allclose(loaded.predict([images, tokens], verbose=0),
                               model.predict([images, tokens], verbose=0), atol=1e-6)


def test_every_fusion_name_is_documented():
    doc = fusion.__doc__
    for name in fusion.FUSIONS:
        assert f"| {name} " in doc, name


def test_models_list_the_fusions_then_the_relational_models():
    assert FUSIONS == (*fusion.FUSIONS, "cnn_mlp", "relation_network", "anchored", "transformer",
                       "objects")
