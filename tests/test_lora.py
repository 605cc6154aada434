"""LoRA by hand (``scratch.lora_dense``) against Keras' ``Dense.enable_lora``, and LoRA on the
tiny KerasHub PaliGemma (notebook 12)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mmcourse import scratch  # noqa: E402


def _lora_layer(d_in, d_out, rank, alpha, use_bias, rng):
    layer = keras.layers.Dense(d_out, use_bias=use_bias)
    layer.build((None, d_in))
    layer.kernel.assign(rng.normal(size=(d_in, d_out)).astype("float32"))
    if use_bias:
        layer.bias.assign(rng.normal(size=(d_out,)).astype("float32"))
    layer.enable_lora(rank, lora_alpha=alpha)
    layer.lora_kernel_b.assign(rng.normal(size=(rank, d_out)).astype("float32"))  # as if trained
    return layer


@pytest.mark.parametrize(("rank", "alpha", "use_bias"),
                         [(1, None, True), (4, 8.0, True), (3, 1.0, False)])
def test_lora_dense_equals_keras_enable_lora(rank, alpha, use_bias):
    rng = np.random.default_rng(rank)
    layer = _lora_layer(6, 5, rank, alpha, use_bias, rng)
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    ours = scratch.lora_dense(x, layer._kernel, layer.bias if use_bias else None,
                              layer.lora_kernel_a, layer.lora_kernel_b,
                              alpha if alpha is not None else rank, rank)
    assert np.allclose(ours, layer(x), atol=1e-4)
    # and Keras' effective kernel is W + (alpha / rank) A B
    merged = layer._kernel.numpy() + (layer.lora_alpha / rank) * (
        layer.lora_kernel_a.numpy() @ layer.lora_kernel_b.numpy())
    assert np.allclose(layer.kernel.numpy(), merged, atol=1e-5)


def test_b_starts_at_zero_so_the_adapted_layer_equals_the_base():
    rng = np.random.default_rng(0)
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    x = rng.normal(size=(5, 3)).astype("float32")
    before = np.asarray(layer(x))
    layer.enable_lora(2)
    assert np.all(layer.lora_kernel_b.numpy() == 0)
    assert np.any(layer.lora_kernel_a.numpy() != 0)
    assert np.array_equal(np.asarray(layer(x)), before)
    assert np.allclose(scratch.lora_dense(x, layer._kernel, layer.bias, layer.lora_kernel_a,
                                          layer.lora_kernel_b, 2, 2), before, atol=1e-6)
    # the base kernel is frozen; Keras leaves the bias trainable
    assert sorted(w.name for w in layer.trainable_weights) == ["bias", "lora_kernel_a",
                                                               "lora_kernel_b"]


def test_lora_dense_by_hand_value():
    # W = I (2x2), A = [[1], [0]], B = [[0, 2]], alpha 1, rank 1: y = x + x0 * [0, 2] + bias
    y = scratch.lora_dense([[3.0, 4.0]], np.eye(2), [1.0, -1.0], [[1.0], [0.0]], [[0.0, 2.0]],
                           1.0, 1)
    assert np.allclose(y, [[4.0, 9.0]])
    y = scratch.lora_dense([[3.0, 4.0]], np.eye(2), None, [[1.0], [0.0]], [[0.0, 2.0]], 4.0, 1)
    assert np.allclose(y, [[3.0, 28.0]])  # alpha / rank = 4 scales the update


def test_lora_dense_rejects_bad_shapes():
    kernel, a, b = np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((1, 2))
    with pytest.raises(ValueError, match="x has 4 features but kernel expects d_in=3"):
        scratch.lora_dense(np.zeros((1, 4)), kernel, None, a, b, 1, 1)
    with pytest.raises(ValueError, match=r"a must be \(d_in, rank\) = \(3, 2\)"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, None, a, b, 1, 2)
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, None, a, b, 1, 0)
    with pytest.raises(ValueError, match=r"bias must be \(d_out,\)"):
        scratch.lora_dense(np.zeros((1, 3)), kernel, np.zeros(3), a, b, 1, 1)
    with pytest.raises(TypeError, match="kernel must hold real numbers"):
        scratch.lora_dense(np.zeros((1, 3)), np.array([["a", "b"]] * 3), None, a, b, 1, 1)
