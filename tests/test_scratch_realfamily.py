"""The real-family pieces by hand (mmcourse.scratch, notebook 11) against the KerasHub layers
they mirror and against hand-computed values."""

import math

import keras
import keras_hub
import numpy as np
import pytest
from keras_hub.src.models.gemma.gemma_attention import CachedGemmaAttention
from keras_hub.src.models.gemma.rms_normalization import RMSNormalization
from keras_hub.src.models.pali_gemma.pali_gemma_decoder_block import (
    PaliGemmaDecoderBlock,
)

from mmcourse import scratch


@pytest.mark.parametrize("magnitude, epsilon", [(1.0, 1e-6), (1e-3, 1e-6), (0.3, 0.1)])
def test_rms_norm_equals_gemma_layer(magnitude, epsilon):
    """Small inputs make the epsilon visible: dropping it changes the output by ~40%."""
    rng = np.random.default_rng(0)
    x = (magnitude * rng.normal(size=(2, 5, 8))).astype("float32")
    layer = RMSNormalization(epsilon=epsilon)
    layer.build(x.shape)
    scale = rng.normal(size=8).astype("float32")
    layer.scale.assign(scale)
    np.testing.assert_allclose(scratch.rms_norm(x, scale, epsilon), layer(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_rms_norm_by_hand_value():
    # x = (3, 4): mean square 12.5, so x / sqrt(12.5); a scale of 1 doubles it.
    out = scratch.rms_norm([3.0, 4.0], [0.0, 1.0], epsilon=1e-12)
    np.testing.assert_allclose(out, [3 / math.sqrt(12.5), 8 / math.sqrt(12.5)], rtol=1e-9)


@pytest.mark.parametrize("shape", [(2, 7, 8), (2, 6, 3, 4)])
def test_rotary_embedding_equals_keras_hub(shape):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    expected = keras_hub.layers.RotaryEmbedding(max_wavelength=10_000)(x).numpy()
    np.testing.assert_allclose(scratch.rotary_embedding(x), expected, rtol=1e-5, atol=1e-5)


def test_rotary_embedding_by_hand_and_relative():
    # d = 2: one pair, frequency 1, so position p rotates (x1, x2) by p radians.
    x = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    out = scratch.rotary_embedding(x)
    np.testing.assert_allclose(out[0, 1], [math.cos(1), math.sin(1)], atol=1e-12)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.0], atol=1e-12)
    # The dot product of a rotated query and key depends only on their distance.
    rng = np.random.default_rng(2)
    q, k = rng.normal(size=8), rng.normal(size=8)
    seq = np.zeros((1, 12, 8))
    seq[0, :] = q
    rq = scratch.rotary_embedding(seq)[0]
    seq[0, :] = k
    rk = scratch.rotary_embedding(seq)[0]
    assert np.isclose(rq[2] @ rk[5], rq[6] @ rk[9]) and np.isclose(rq[0] @ rk[0], q @ k)
    assert not np.isclose(rq[2] @ rk[5], rq[2] @ rk[7])


def _gemma_attention(query_heads, kv_heads, head_dim):
    layer = CachedGemmaAttention(head_dim=head_dim, num_query_heads=query_heads,
                                 num_key_value_heads=kv_heads)
    layer.build((None, None, 16))
    return layer


@pytest.mark.parametrize("query_heads, kv_heads", [(4, 2), (4, 1), (3, 3)])
def test_grouped_query_attention_equals_gemma(query_heads, kv_heads):
    rng = np.random.default_rng(3)
    q = rng.normal(size=(2, 5, query_heads, 4)).astype("float32")
    k = rng.normal(size=(2, 6, kv_heads, 4)).astype("float32")
    v = rng.normal(size=(2, 6, kv_heads, 4)).astype("float32")
    mask = rng.random((2, 5, 6)) < 0.7
    mask[:, :, 0] = True  # every query sees something
    layer = _gemma_attention(query_heads, kv_heads, 4)
    expected = layer._compute_attention(q, k, v, mask).numpy()
    np.testing.assert_allclose(scratch.grouped_query_attention(q, k, v, mask), expected,
                               rtol=1e-5, atol=1e-5)


def test_grouped_query_attention_shares_heads_and_matches_notebook_06():
    """Query head j reads key/value head j // group; each head is notebook 06's attention."""
    rng = np.random.default_rng(4)
    q, k, v = rng.normal(size=(1, 3, 4, 2)), rng.normal(size=(1, 5, 2, 2)), \
        rng.normal(size=(1, 5, 2, 2))
    out = scratch.grouped_query_attention(q, k, v)
    for head in range(4):
        expected, _ = scratch.scaled_dot_product_attention(q[:, :, head], k[:, :, head // 2],
                                                           v[:, :, head // 2])
        np.testing.assert_allclose(out[:, :, head], expected, rtol=1e-10)


def test_grouped_query_attention_all_masked_row_is_zero():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(1, 2, 2, 2)), rng.normal(size=(1, 3, 1, 2)), \
        rng.normal(size=(1, 3, 1, 2))
    mask = np.array([[[True, False, True], [False, False, False]]])
    out = scratch.grouped_query_attention(q, k, v, mask)
    assert np.all(out[0, 1] == 0) and np.all(out[0, 0] != 0)


def test_grouped_query_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="multiple of the key/value heads"):
        scratch.grouped_query_attention(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 2, 4)),
                                        np.zeros((1, 2, 2, 4)))


def test_geglu_equals_keras_ops():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 8)).astype("float32")
    gate, up, down = (rng.normal(size=s).astype("float32") for s in ((8, 6), (8, 6), (6, 8)))
    expected = keras.ops.matmul(keras.activations.gelu(x @ gate, approximate=True) * (x @ up),
                                down).numpy()
    np.testing.assert_allclose(scratch.geglu(x, gate, up, down), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="kernels must be"):
        scratch.geglu(x, gate, up[:, :5], down)


def _keras_hub_mask(padding, response, image_tokens):
    block = PaliGemmaDecoderBlock(hidden_dim=8, intermediate_dim=8, head_dim=4,
                                  num_query_heads=2, num_key_value_heads=1)
    x = np.zeros((padding.shape[0], image_tokens + padding.shape[1], 8), "float32")
    return block._compute_attention_mask(x, padding, None, 0, response).numpy().astype(bool)


def test_prefix_lm_mask_equals_paligemma_block():
    padding = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], "int32")
    response = np.array([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]], "int32")
    np.testing.assert_array_equal(scratch.prefix_lm_mask(padding, response, image_tokens=3),
                                  _keras_hub_mask(padding, response, 3))


def test_prefix_lm_mask_by_hand():
    # One image token, a prompt of 2, a response of 2: the prefix (3 tokens) is seen by all,
    # in both directions; the response only causally. Rows are queries, columns keys.
    mask = scratch.prefix_lm_mask([[1, 1, 1, 1]], [[0, 0, 1, 1]], image_tokens=1)
    expected = [[1, 1, 1, 0, 0],
                [1, 1, 1, 0, 0],
                [1, 1, 1, 0, 0],
                [1, 1, 1, 1, 0],
                [1, 1, 1, 1, 1]]
    np.testing.assert_array_equal(mask[0], np.array(expected, bool))
    with pytest.raises(ValueError, match="response_mask must have the shape"):
        scratch.prefix_lm_mask([[1, 1]], [[0, 1, 1]])
