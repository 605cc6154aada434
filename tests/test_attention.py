"""Attention by hand (mmcourse.scratch, notebook 06) against Keras and hand-computed values."""

import keras
import numpy as np
import pytest

from mmcourse import scratch


def test_single_query_by_hand():
    # One query, two keys: scores 0 and 2/sqrt(2) = sqrt(2); softmax by hand.
    q = np.array([[[1.0, 1.0]]])
    k = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    v = np.array([[[10.0], [20.0]]])
    output, weights = scratch.scaled_dot_product_attention(q, k, v)
    w1 = np.exp(np.sqrt(2)) / (1 + np.exp(np.sqrt(2)))
    np.testing.assert_allclose(weights, [[[1 - w1, w1]]], rtol=1e-12)
    np.testing.assert_allclose(output, [[[10 * (1 - w1) + 20 * w1]]], rtol=1e-12)


def test_mask_removes_a_key_entirely():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(1, 3, 4)), rng.normal(size=(1, 5, 4)), rng.normal(size=(1, 5, 2))
    mask = np.ones((1, 3, 5), bool)
    mask[:, :, 2] = False
    output, weights = scratch.scaled_dot_product_attention(q, k, v, mask)
    assert np.all(weights[:, :, 2] == 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0)
    kept = [0, 1, 3, 4]  # the same as attention over the four other keys
    expected, _ = scratch.scaled_dot_product_attention(q, k[:, kept], v[:, kept])
    np.testing.assert_allclose(output, expected, rtol=1e-12)


def test_unscaled_scores_would_differ():
    """The 1/sqrt(d) matters: weights equal softmax(q k / sqrt(d)), not softmax(q k)."""
    q = np.full((1, 1, 4), 1.0)
    k = np.array([[[1.0, 1, 1, 1], [0, 0, 0, 0]]])
    _, weights = scratch.scaled_dot_product_attention(q, k, np.eye(2)[None])
    scaled = np.exp(4 / 2) / (np.exp(4 / 2) + 1)  # q.k = 4, sqrt(4) = 2
    assert weights[0, 0, 0] == pytest.approx(scaled, rel=1e-12)


def _keras_attention(num_heads, key_dim, value_dim, dtype="float64"):
    return keras.layers.MultiHeadAttention(num_heads, key_dim, value_dim=value_dim, dtype=dtype)


CASES = [  # (N, Tq, Tv, d_query, d_key, d_value, heads, key_dim, value_dim, masked)
    (1, 1, 1, 3, 3, 3, 1, 2, None, False),
    (2, 4, 6, 8, 8, 8, 2, 4, None, False),
    (3, 5, 7, 6, 4, 9, 3, 5, None, True),
    (2, 3, 3, 5, 5, 5, 4, 3, 2, True),
    (1, 9, 2, 4, 7, 3, 1, 8, 5, True),
    (2, 6, 6, 16, 16, 16, 4, 4, None, True),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_multi_head_attention_equals_keras(case):
    n, tq, tv, dq, dk, dv, heads, key_dim, value_dim, masked = case
    rng = np.random.default_rng(tq * 31 + heads)
    query = rng.normal(size=(n, tq, dq))
    key = rng.normal(size=(n, tv, dk))
    value = rng.normal(size=(n, tv, dv))
    mask = rng.random((n, tq, tv)) < 0.7 if masked else None
    if masked:
        mask[..., 0] = True  # every query may attend somewhere
    layer = _keras_attention(heads, key_dim, value_dim)
    expected = np.asarray(layer(query, value, key, attention_mask=mask))
    got = scratch.multi_head_attention(query, value, layer.get_weights(), heads, key=key,
                                       mask=mask)
    assert got.shape == (n, tq, dq)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_multi_head_attention_key_defaults_to_value_and_works_in_float32():
    rng = np.random.default_rng(3)
    query = rng.normal(size=(2, 4, 8)).astype("float32")
    value = rng.normal(size=(2, 5, 8)).astype("float32")
    layer = _keras_attention(2, 4, None, dtype="float32")
    expected = np.asarray(layer(query, value))
    got = scratch.multi_head_attention(query, value, layer.get_weights(), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_heads_are_separate():
    """Two heads are not one wide head: merging them changes the answer."""
    rng = np.random.default_rng(4)
    query, value = rng.normal(size=(1, 3, 4)), rng.normal(size=(1, 3, 4))
    layer = _keras_attention(2, 2, None)
    expected = np.asarray(layer(query, value))
    wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
    merged = [w.reshape(w.shape[0], 1, -1) if w.ndim == 3 else w.reshape(1, -1)
              for w in (wq, bq, wk, bk, wv, bv)] + [wo.reshape(1, 4, -1), bo]
    one_head = scratch.multi_head_attention(query, value, merged, 1)
    assert not np.allclose(one_head, expected, atol=1e-3)
    # the one wide head by hand: one softmax over 4-wide keys, scaled by 1 / sqrt(4)
    q, k, v = ((x @ w.reshape(4, 4) + b.reshape(4)) for x, w, b in
               ((query, wq, bq), (value, wk, bk), (value, wv, bv)))
    scores = q @ np.swapaxes(k, 1, 2) / 2.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(one_head, weights @ v @ wo.reshape(4, 4) + bo, atol=1e-10)


@pytest.mark.parametrize(("q", "k", "v", "mask", "match"), [
    ((2, 3), (2, 3, 4), (2, 3, 4), None, r"q must be 3-D \(N, Tq, d\), got shape \(2, 3\)"),
    ((2, 3, 4), (2, 3, 5), (2, 3, 4), None, r"q \(2, 3, 4\), k \(2, 3, 5\)"),
    ((2, 3, 4), (1, 3, 4), (1, 3, 4), None, r"q \(2, 3, 4\), k \(1, 3, 4\)"),
    ((2, 3, 4), (2, 5, 4), (2, 6, 4), None, r"k \(2, 5, 4\), v \(2, 6, 4\)"),
    ((2, 3, 4), (2, 5, 4), (2, 5, 4), (2, 5, 3), r"mask must be a boolean \(N, Tq, Tk\)"),
])
def test_attention_bad_shapes_name_both(q, k, v, mask, match):
    arrays = [np.zeros(shape) for shape in (q, k, v)]
    mask = None if mask is None else np.ones(mask, bool)
    with pytest.raises(ValueError, match=match):
        scratch.scaled_dot_product_attention(*arrays, mask=mask)


def test_attention_mask_must_be_boolean():
    q = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="boolean"):
        scratch.scaled_dot_product_attention(q, q, q, mask=np.ones((1, 2, 2)))


def test_multi_head_attention_bad_arguments():
    layer = _keras_attention(2, 4, None)
    query, value = np.zeros((1, 3, 8)), np.zeros((1, 5, 8))
    layer(query, value)
    weights = layer.get_weights()
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        scratch.multi_head_attention(query, value, weights, 0)
    with pytest.raises(ValueError, match=r"query kernel must be \(d_in, num_heads, head_dim\)"):
        scratch.multi_head_attention(query, value, weights, 4)
    with pytest.raises(ValueError, match="8 arrays"):
        scratch.multi_head_attention(query, value, weights[:6], 2)
    with pytest.raises(ValueError, match=r"query \(1, 3, 8\), key \(2, 5, 8\)"):
        scratch.multi_head_attention(query, value, weights, 2, key=np.zeros((2, 5, 8)))
    with pytest.raises(ValueError, match=r"key kernel must be .* for key \(1, 5, 6\)"):
        scratch.multi_head_attention(query, value, weights, 2, key=np.zeros((1, 5, 6)))
    with pytest.raises(ValueError, match=r"mask must be a boolean \(N, Tq, Tv\) array \(1, 3, 5\)"):
        scratch.multi_head_attention(query, value, weights, 2, mask=np.ones((1, 5, 3), bool))
