"""Relational layers and models (notebook 06): hand-computed values and brute force."""

import warnings

import keras
import numpy as np
import pytest

from mmcourse import blocks as relations
from mmcourse.matcher.io import load_matcher
from mmcourse.matcher.model import RELATIONAL_FUSIONS, build_model
from mmcourse.train.tasks import RELATIONAL_KINDS, accuracy_by_type


def test_coordinate_features_by_hand():
    features = relations.coordinate_features(2, 2, frequencies=1)
    # Row-major: (row 0, col 0), (row 0, col 1), (row 1, col 0), (row 1, col 1);
    # centres at -0.5 and +0.5; x follows the column, y the row.
    s, c = np.sin(np.pi / 2), np.cos(np.pi / 2)
    expected = [[-0.5, -0.5, -s, c, -s, c],
                [0.5, -0.5, s, c, -s, c],
                [-0.5, 0.5, -s, c, s, c],
                [0.5, 0.5, s, c, s, c]]
    np.testing.assert_allclose(features, expected, atol=1e-7)
    assert features.dtype == np.float32
    assert relations.coordinate_features(8, 8).shape == (64, 14)
    assert relations.coordinate_features(3, 5, frequencies=0).shape == (15, 2)


@pytest.mark.parametrize(("args", "match"), [
    ((0, 2), "height must be a positive int, got 0"),
    ((2, 2.5), "width must be a positive int"),
    ((2, 2, -1), "frequencies must be an int >= 0, got -1"),
])
def test_coordinate_features_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        relations.coordinate_features(*args)


def test_region_tokens_are_regions_then_coordinates():
    grid = np.arange(2 * 2 * 3 * 4, dtype="float32").reshape(2, 2, 3, 4)
    tokens = np.asarray(relations.RegionTokens(frequencies=2)(grid))
    assert tokens.shape == (2, 6, 4 + 2 + 8)
    np.testing.assert_array_equal(tokens[1, 4, :4], grid[1, 1, 1])  # region 4 = row 1, col 1
    np.testing.assert_allclose(tokens[0, :, 4:], relations.coordinate_features(2, 3, 2))
    with pytest.raises(ValueError, match=r"region grid \(batch, H, W, C\)"):
        relations.RegionTokens()(np.zeros((2, 6, 4), "float32"))
    # frequencies=0, documented as allowed: each region's features, then its x and y alone
    tokens = np.asarray(relations.RegionTokens(frequencies=0)(grid))
    assert tokens.shape == (2, 6, 4 + 2)
    np.testing.assert_allclose(tokens[0, :, 4:], [[-2 / 3, -0.5], [0, -0.5], [2 / 3, -0.5],
                                                  [-2 / 3, 0.5], [0, 0.5], [2 / 3, 0.5]],
                               atol=1e-6)  # centres of a 2 x 3 grid, by hand


def test_coordinate_channels_mark_every_pixel():
    images = np.zeros((1, 3, 5, 1), "float32")
    out = np.asarray(relations.CoordinateChannels()(images))
    assert out.shape == (1, 3, 5, 3)
    assert tuple(out[0, 0, 0, 1:]) == (-1.0, -1.0)  # top left
    assert tuple(out[0, 0, 4, 1:]) == (1.0, -1.0)  # top right: x grows along a row
    assert tuple(out[0, 2, 0, 1:]) == (-1.0, 1.0)  # bottom left: y grows downwards
    assert out[0, 1, 2, 1:].tolist() == [0.0, 0.0]


def test_relation_module_equals_a_loop_over_all_pairs():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(2, 5, 3)).astype("float32")
    question = rng.normal(size=(2, 4)).astype("float32")
    layer = relations.RelationModule(units=6, depth=3)
    out = np.asarray(layer([tokens, question]))
    first, second, question_kernel, bias, w2, b2, w3, b3 = layer.get_weights()
    w1 = np.vstack([first, second, question_kernel])  # g's first layer on [o_i; o_j; q]
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    expected = np.zeros((2, 6))
    for n in range(2):
        for i in range(5):
            for j in range(5):
                pair = np.concatenate([tokens[n, i], tokens[n, j], question[n]])
                expected[n] += relu(relu(relu(pair @ w1 + bias) @ w2 + b2) @ w3 + b3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert layer.count_params() == relations.relation_module_parameters(3, 4, 6, 3)
    assert relations.relation_module_parameters(3, 4, 6, 3) == (6 + 4 + 1) * 6 + 2 * 7 * 6


def test_relation_module_is_not_symmetric_in_the_pair():
    """g([o_i; o_j]) and g([o_j; o_i]) differ: the module sees ordered pairs."""
    layer = relations.RelationModule(units=4, depth=1)
    tokens = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")
    pairs = np.asarray(layer.pairs([tokens, np.zeros((1, 1), "float32")]))
    assert pairs.shape == (1, 2, 2, 4)
    assert not np.allclose(pairs[0, 0, 1], pairs[0, 1, 0])


def test_pair_count_and_attention_cost():
    assert relations.relation_pair_count(4, 4) == 256
    assert relations.relation_pair_count(8, 8) == 4096
    assert relations.attention_cost(64, 64) == 4 * 64 * 64 * 64 + 2 * 64 * 64 * 64
    with pytest.raises(ValueError, match="height must be a positive int"):
        relations.relation_pair_count(0, 4)


def _layer_norm(x, gamma, beta, eps=1e-3):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@pytest.mark.parametrize("cross", [False, True])
def test_transformer_block_equals_the_pre_norm_formula(cross):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 8))
    context = rng.normal(size=(2, 5, 8)) if cross else None
    block = relations.TransformerBlock(num_heads=2, key_dim=4, hidden_units=16,
                                       dtype="float64")
    out = np.asarray(block(x, context) if cross else block(x))
    weights = {w.path.split("/", 1)[1]: np.asarray(w) for w in block.weights}
    h = _layer_norm(x, weights["query_norm/gamma"], weights["query_norm/beta"])
    source = h if not cross else _layer_norm(context, weights["context_norm/gamma"],
                                             weights["context_norm/beta"])
    project = lambda a, name: (np.einsum("ntd,dhk->nhtk", a,  # noqa: E731
                                         weights[f"attention/{name}/kernel"])
                               + weights[f"attention/{name}/bias"][None, :, None])
    q, k, v = project(h, "query"), project(source, "key"), project(source, "value")
    attention = _softmax(q @ np.swapaxes(k, -1, -2) / 2.0)  # sqrt(key_dim) = 2
    heads = attention @ v
    attended = (np.einsum("nhtv,hvd->ntd", heads, weights["attention/attention_output/kernel"])
                + weights["attention/attention_output/bias"])
    y = x + attended
    hidden = np.maximum(_layer_norm(y, weights["hidden_norm/gamma"], weights["hidden_norm/beta"])
                        @ weights["hidden/kernel"] + weights["hidden/bias"], 0)
    expected = y + hidden @ weights["out/kernel"] + weights["out/bias"]
    np.testing.assert_allclose(out, expected, atol=1e-10)
    scores = np.asarray(block.attention_scores(x, context))
    np.testing.assert_allclose(scores, attention, atol=1e-10)


def test_transformer_block_bad_arguments():
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        relations.TransformerBlock(num_heads=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        relations.TransformerBlock(dropout=1.5)
    with pytest.raises(ValueError, match=r"tokens \(batch, T, d\)"):
        relations.TransformerBlock()(np.zeros((2, 4), "float32"))


@pytest.mark.parametrize("fusion", RELATIONAL_FUSIONS)
def test_relational_models_build_save_and_load(fusion, tmp_path):
    model = build_model("qa", fusion, vocabulary_size=20, num_answers=7)
    images = np.random.default_rng(0).random((3, 64, 64, 3)).astype("float32")
    tokens = np.array([[2, 3, 4, 0], [5, 0, 0, 0], [6, 7, 8, 9]], "int32")
    probabilities = model.predict([images, tokens], verbose=0)
    assert probabilities.shape == (3, 7)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    path = tmp_path / f"{fusion}.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = load_matcher(path)
    np.testing.assert_allclose(loaded.predict([images, tokens], verbose=0), probabilities,
                               atol=1e-6)


def test_relation_network_sees_a_4x4_grid_and_256_pairs():
    model = build_model("match", "relation_network", vocabulary_size=20)
    assert tuple(model.get_layer("regions").output.shape[1:]) == (16, 32 + 14)
    assert model.get_layer("fusion").count_params() == relations.relation_module_parameters(
        46, 32, 64, 3)


def test_accuracy_by_type_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    labels = [0, 1, 1, 1, 0]
    kinds = ["shape", "count", "nearest colour", "shape", "side"]
    result = accuracy_by_type(probabilities, labels, kinds)
    assert result == {"relational": 0.5, "non_relational": 1.0, "count": 1.0,
                      "nearest colour": 0.0, "shape": 1.0, "side": 1.0}
    match = accuracy_by_type(np.array([[0.7], [0.2], [0.51]]), [1, 1, 0],
                             ["spatial", "distance", "spatial"])
    assert match == {"relational": 1 / 3, "non_relational": None, "distance": 0.0,
                     "spatial": 0.5}
    assert set(RELATIONAL_KINDS) >= {"nearest shape", "furthest colour", "count", "spatial"}
    with pytest.raises(ValueError, match="same length"):
        accuracy_by_type(probabilities, labels[:3], kinds)


def test_train_reports_accuracy_by_type(course_data, tmp_path):
    import json

    from mmcourse.train import tasks as training

    quick = {"epochs": 1, "train_size": 200, "test_size": 100, "validate": False, "log": None}
    qa = training.train("qa", "transformer", "relations", root=course_data, run_dir=tmp_path,
                        **quick)
    match = training.train("match", "cnn_mlp", "relations", root=course_data, **quick)
    for result, kinds in ((qa, {"shape", "side", "height", "count"}),
                          (match, {"spatial", "count"})):
        by_type = result["accuracy_by_type"]
        assert {"relational", "non_relational"} <= set(by_type)
        assert kinds <= set(by_type), by_type
        json.dumps(result)
    assert qa["test_examples"] == 100 and qa["epochs_run"] == 1
    assert match["accuracy_by_type"]["non_relational"] is None  # no attribute statements
    assert load_matcher(tmp_path / "model.keras").count_params() == qa["params"]


def test_transformer_block_self_attention_ignores_padding():
    """With an Embedding(mask_zero=True) before it, padded tokens are no keys: changing what
    the padding embeds changes nothing at the real positions."""
    token_ids = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(token_ids)
    model = keras.Model(token_ids, relations.TransformerBlock(2, 4, 16)(embedded))
    embedding = model.layers[1]
    real = np.array([[3, 4, 5, 0, 0]], "int32")
    before = np.asarray(model(real))
    weights = embedding.get_weights()[0]
    weights[0] = 100.0  # what a padded position embeds
    embedding.set_weights([weights])
    after = np.asarray(model(real))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
    assert not np.allclose(after[:, 3:], before[:, 3:], atol=1e-3)


# --- AnchoredAttention: the docstring's formula in NumPy (issue 28, section 7) ---------------


def _anchored_reference(layer, x, regions):
    """(anchor, attention, output) of ``AnchoredAttention`` by the formula of its docstring,
    with the region centres of a 2 x 3 grid written out by hand."""
    w = {name: np.asarray(getattr(layer, name)) for name in (
        "anchor_query_kernel", "anchor_query_bias", "anchor_key_kernel", "anchor_key_bias",
        "anchor_value_kernel", "anchor_value_bias", "query_kernel", "query_bias",
        "key_kernel", "key_bias", "value_kernel", "value_bias", "scale_kernel", "scale_bias",
        "output_kernel", "output_bias")}
    heads, key_dim = layer.num_heads, layer.key_dim
    q = _layer_norm(x, np.asarray(layer.query_norm.gamma), np.asarray(layer.query_norm.beta))
    r = _layer_norm(regions, np.asarray(layer.context_norm.gamma),
                    np.asarray(layer.context_norm.beta))

    def project(tokens, name):  # (B, T, d) -> (B, heads, T, key_dim)
        out = tokens @ w[f"{name}_kernel"] + w[f"{name}_bias"]
        return out.reshape(*out.shape[:2], heads, key_dim).transpose(0, 2, 1, 3)

    # centres (x, y) of a 2 x 3 grid, row-major: x in -2/3, 0, 2/3 and y in -1/2, 1/2
    centres = np.array([[-2 / 3, -0.5], [0, -0.5], [2 / 3, -0.5],
                        [-2 / 3, 0.5], [0, 0.5], [2 / 3, 0.5]])
    anchor = _softmax(project(q, "anchor_query") @ np.swapaxes(project(r, "anchor_key"), -1, -2)
                      / np.sqrt(key_dim))
    where = anchor @ centres                                      # (B, heads, T, 2)
    distance = ((centres[None, None, None] - where[..., None, :]) ** 2).sum(-1)
    scale = (q @ w["scale_kernel"] + w["scale_bias"]).transpose(0, 2, 1)[..., None]
    scores = project(q, "query") @ np.swapaxes(project(r, "key"), -1, -2) / np.sqrt(key_dim)
    attention = _softmax(scores + scale * distance)
    read = [(a @ project(r, name)).transpose(0, 2, 1, 3).reshape(*x.shape[:2], -1)
            for a, name in ((anchor, "anchor_value"), (attention, "value"))]
    y = x + np.concatenate(read, -1) @ w["output_kernel"] + w["output_bias"]
    hidden = np.maximum(_layer_norm(y, np.asarray(layer.hidden_norm.gamma),
                                    np.asarray(layer.hidden_norm.beta))
                        @ np.asarray(layer.hidden.kernel) + np.asarray(layer.hidden.bias), 0)
    return anchor, attention, y + hidden @ np.asarray(layer.out.kernel) + np.asarray(layer.out.bias)


def test_anchored_attention_weights_of_and_call_equal_the_formula():
    rng = np.random.default_rng(7)
    x, regions = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 6, 4))
    layer = relations.AnchoredAttention((2, 3), num_heads=2, key_dim=3, hidden_units=7,
                                        dtype="float64")
    layer([x, regions])
    for weight in layer.weights:  # every weight random, the zero-initialised scale included
        weight.assign(rng.normal(size=weight.shape) * 0.7)
    anchor, attention, output = _anchored_reference(layer, x, regions)
    got_anchor, got_attention = (np.asarray(a) for a in layer.weights_of(x, regions))
    assert got_anchor.shape == got_attention.shape == (2, 2, 3, 6)
    np.testing.assert_allclose(got_anchor, anchor, atol=1e-10)
    # the layer holds the centres in float32: differences of 1e-8 from the exact ones
    np.testing.assert_allclose(got_attention, attention, atol=1e-7)
    np.testing.assert_allclose(np.asarray(layer([x, regions])), output, atol=1e-7)
    # the distance term matters: without it the attention is another one
    layer.scale_kernel.assign(np.zeros_like(layer.scale_kernel))
    layer.scale_bias.assign(np.zeros_like(layer.scale_bias))
    _, plain = (np.asarray(a) for a in layer.weights_of(x, regions))
    assert np.abs(plain - attention).max() > 0.05


def test_anchored_attention_attends_to_the_furthest_region_with_a_large_positive_scale():
    """A scale w = +50 for every token: the attention goes to the region furthest from the
    anchor; -50, to the anchor's own region (with the other scores zeroed)."""
    layer = relations.AnchoredAttention((2, 3), num_heads=1, key_dim=2, hidden_units=4,
                                        dtype="float64")
    x, regions = np.ones((1, 1, 3)), np.eye(6)[None]
    layer([x, regions])
    for name in ("query", "key"):
        getattr(layer, f"{name}_kernel").assign(np.zeros(getattr(layer, f"{name}_kernel").shape))
    # the anchor: region 0 (top left), found by a large anchor score on it alone
    layer.anchor_query_bias.assign([10.0, 0.0])
    kernel = np.zeros((6, 2))
    kernel[:, 0] = _layer_norm(np.eye(6), 1, 0)[0] * 10  # keys: only region 0 matches
    layer.anchor_key_kernel.assign(np.linalg.pinv(_layer_norm(np.eye(6), 1, 0)) @ kernel)
    anchor, _ = layer.weights_of(x, regions)
    assert np.asarray(anchor)[0, 0, 0].argmax() == 0
    for bias, expected in ((50.0, 5), (-50.0, 0)):  # region 5 is the bottom right corner
        layer.scale_kernel.assign(np.zeros((3, 1)))
        layer.scale_bias.assign([bias])
        _, attention = layer.weights_of(x, regions)
        assert np.asarray(attention)[0, 0, 0].argmax() == expected


# --- what the mutation audit found untested (issue 28, section 7) ---------------------------


@pytest.mark.parametrize("frequencies", [True, 1.5, -1, "3"])
def test_region_tokens_refuse_a_frequency_count_that_is_not_an_int_from_0(frequencies):
    with pytest.raises(ValueError, match=r"frequencies must be an int >= 0, got "):
        relations.RegionTokens(frequencies=frequencies)


def test_default_layers_have_their_parameter_counts_by_hand():
    """The defaults in the signatures (4 heads of 16, 128 hidden units; RelationModule
    64 units, depth 3), counted weight by weight on d = 64 tokens."""
    block = relations.TransformerBlock()
    block.build((None, 5, 64))
    attention = 3 * (64 * 4 * 16 + 4 * 16) + (4 * 16 * 64 + 64)  # q, k, v; output
    norms = 2 * (2 * 64)  # query_norm, hidden_norm (context_norm unused in self-attention)
    feed_forward = (64 * 128 + 128) + (128 * 64 + 64)
    assert block.count_params() == attention + norms + feed_forward == 33472
    module = relations.RelationModule()
    module.build([(None, 9, 3), (None, 4)])
    assert module.count_params() == relations.relation_module_parameters(3, 4) == (
        (2 * 3 + 4 + 1) * 64 + 2 * (64 * 64 + 64))
    anchored = relations.AnchoredAttention((2, 2))
    anchored.build([(None, 3, 64), (None, 4, 8)])
    width = 4 * 16
    assert anchored.count_params() == (
        2 * (64 * width + width) + 4 * (8 * width + width)  # anchor/plain query; keys, values
        + (64 * 4 + 4) + (2 * width * 64 + 64)  # distance scale; output
        + 2 * 64 + 2 * 8 + 2 * 64  # query, context and hidden norms
        + (64 * 128 + 128) + (128 * 64 + 64))  # feed-forward
