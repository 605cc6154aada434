"""Overfitting remedies: L2 and dropout added to a fusion model (mmcourse.regularization)."""

import numpy as np
import pytest

from mmcourse import regularization


def small_model():
    import keras

    from mmcourse.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("match", "concat", vocabulary_size=20, sequence_length=6)


def batch(size=8):
    rng = np.random.default_rng(0)
    images = rng.random((size, 64, 64, 3), dtype=np.float32)
    token_ids = rng.integers(1, 20, (size, 6)).astype("int32")
    return (images, token_ids), (rng.random(size) > 0.5).astype("float32")


def test_l2_adds_the_penalty_of_every_kernel():
    model = small_model()
    regularized = regularization.regularize(model, l2=0.01)
    kernels = [v for v in regularized.trainable_variables if v.name in ("kernel", "embeddings")]
    expected = sum(0.01 * float(np.sum(np.square(v.numpy()))) for v in kernels)
    assert len(regularized.losses) == len(kernels) > 0
    assert float(sum(regularized.losses)) == pytest.approx(expected, rel=1e-5)


def test_dropout_is_active_in_training_only():
    model = small_model()
    inputs, _ = batch()
    before = model(inputs).numpy()
    regularized = regularization.regularize(model, dropout=0.5)
    names = [layer.name for layer in regularized.layers]
    assert "dropout_in" in names and "dropout_out" in names
    np.testing.assert_allclose(regularized(inputs, training=False).numpy(), before, atol=1e-6)
    assert not np.allclose(regularized(inputs, training=True).numpy(), before)
    regularized.fit(*batch(), epochs=1, verbose=0)  # compiled and trainable


def test_bad_arguments_are_named():
    model = small_model()
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\), got 1.5"):
        regularization.regularize(model, dropout=1.5)
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        regularization.regularize(model, l2=-1.0)
    with pytest.raises(ValueError, match="unknown remedies \\['magic'\\]"):
        regularization.compare_remedies(small_model, None, None, epochs=1, remedies=["magic"])


def test_format_table_rounds_floats():
    rows = [{"remedy": "baseline", "epochs": 3, "val_accuracy": 0.71234, "gap": 0.2}]
    assert regularization.format_table(rows).splitlines() == [
        "remedy    epochs  val_accuracy  gap  ", "baseline  3       0.712         0.200"]
