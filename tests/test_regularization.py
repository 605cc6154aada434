"""Overfitting remedies: L2 and dropout added to a fusion model (mmcourse.train.regularization)."""

import numpy as np
import pytest

from mmcourse.train import regularization


def small_model():
    import keras

    from mmcourse.matcher.model import build_model

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


def test_data_loss_accuracy_is_the_hand_computed_cross_entropy():
    import tensorflow as tf

    model = small_model()
    (images, token_ids), labels = batch(10)
    dataset = tf.data.Dataset.from_tensor_slices(((images, token_ids), labels)).batch(4)
    probabilities = model.predict((images, token_ids), verbose=0)[:, 0].astype(float)
    eps = 1e-7  # Keras clips probabilities to [eps, 1 - eps]
    p = np.clip(probabilities, eps, 1 - eps)
    expected_loss = float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))
    expected_accuracy = float(np.mean((probabilities > 0.5) == (labels > 0.5)))
    loss, accuracy = regularization.data_loss_accuracy(model, dataset)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert accuracy == pytest.approx(expected_accuracy)


def test_combined_remedy_runs_all_four_and_is_scored_on_test_data(recwarn):
    import tensorflow as tf

    (images, token_ids), labels = batch(16)
    requested = []

    def make_train_data(augment=False):
        requested.append(augment)
        return tf.data.Dataset.from_tensor_slices(((images, token_ids), labels)).batch(8)

    data = make_train_data()
    histories, rows = regularization.compare_remedies(
        small_model, make_train_data, data, epochs=4, remedies=["combined"], l2=0.01,
        dropout=0.5, patience=1, keep_models=True, test_data=data)
    (row,) = rows
    combined = row["model"]
    assert requested[1] is True  # trained on the augmented data (then scored on plain data)
    assert {"dropout_in", "dropout_out"} <= {layer.name for layer in combined.layers}
    assert len(combined.losses) > 0  # the L2 penalties
    val_loss = histories["combined"]["val_loss"]
    assert row["best_epoch"] == int(np.argmin(val_loss)) + 1  # early stopping's choice
    assert row["epochs"] == len(val_loss) and (row["epochs"] == 4
                                               or row["epochs"] == row["best_epoch"] + 1)
    assert set(row) >= {"test_accuracy", "test_loss", "val_loss", "gap"}
    assert not [w for w in recwarn if "shuffle" in str(w.message)]
