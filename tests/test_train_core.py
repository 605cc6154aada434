"""mmcourse.train.core: TrainConfig's checks and defaults, Splits, and fit_and_evaluate's
result, compared with Keras' own evaluate and with accuracies counted by hand."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse.train import core


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be a positive int, got 0"),
    ("epochs", 2.0, "epochs must be a positive int, got 2.0"),
    ("batch_size", -8, "batch_size must be a positive int, got -8"),
    ("patience", True, "patience must be a positive int, got True"),
    ("learning_rate", 0.0, "learning_rate must be a positive number, got 0.0"),
    ("seed", "0", "seed must be an int, got '0'"),
    ("schedule", 0.1, "schedule must be a function epoch -> learning rate, got 0.1"),
    ("validate", 1, "validate must be True or False, got 1"),
])
def test_train_config_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        core.TrainConfig(**{field: value})


def test_train_config_resolves_only_the_unset_fields_and_stays_frozen():
    config = core.TrainConfig(epochs=3, seed=np.int64(2))  # a NumPy int is an int
    resolved = config.resolved(epochs=15, batch_size=64, learning_rate=2e-3)
    assert (resolved.epochs, resolved.batch_size, resolved.learning_rate) == (3, 64, 2e-3)
    assert resolved.seed == 2 and resolved.patience is None and resolved.validate is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.epochs = 4


def test_train_and_train_folder_take_the_config_or_its_fields():
    from mmcourse.apps import owndata
    from mmcourse.train import tasks

    # the fields are checked before any data is read: the folder need not exist
    with pytest.raises(ValueError, match="patience must be a positive int, got 0"):
        owndata.train_folder("no such folder", patience=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        tasks.train("match", "concat", "attributes", core.TrainConfig(epochs=1), batch_size=0)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['epoch'\]; the options are "
                                        r"TrainConfig's fields: epochs, batch_size"):
        tasks.train("match", "concat", epoch=3)
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        owndata.train_folder("no such folder", config={"epochs": 1})


def _tiny_problem(size, seed):
    """A match problem a linear model learns: label 1 when the image is bright."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(size) < 0.5).astype("float32")
    images = (rng.random((size, 4, 4, 3)) * 0.5 + 0.5 * labels[:, None, None, None]).astype(
        "float32")
    token_ids = rng.integers(1, 5, (size, 3)).astype("int32")
    return images, token_ids, labels


def _dataset(images, token_ids, labels):
    return tf.data.Dataset.from_tensor_slices(((images, token_ids), labels)).batch(8)


def _tiny_model():
    image = keras.Input((4, 4, 3), name="image")
    token_ids = keras.Input((3,), dtype="int32", name="token_ids")
    flat = keras.layers.Flatten()(image)
    output = keras.layers.Dense(1, activation="sigmoid", name="match")(flat)
    model = keras.Model([image, token_ids], output)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_and_evaluate_returns_the_shared_keys_checked_by_hand(tmp_path):
    keras.utils.set_random_seed(0)
    train = _tiny_problem(64, 0)
    test_images, test_tokens, test_labels = _tiny_problem(24, 1)
    kinds = ["bright" if label else "dark" for label in test_labels]
    splits = core.Splits(_dataset(*train), None,
                         _dataset(test_images, test_tokens, test_labels),
                         {"train": 64, "validation": 0, "test": 24})
    lines = []
    model = _tiny_model()
    result = core.fit_and_evaluate(
        model, splits, core.TrainConfig(epochs=3, batch_size=8, learning_rate=0.05, seed=5),
        test_labels=test_labels, test_kinds=kinds, name="tiny", log=lines.append,
        run_dir=tmp_path)
    assert tuple(result) == core.RESULT_KEYS
    predictions = model.predict([test_images, test_tokens], verbose=0)[:, 0]
    hits = (predictions > 0.5) == (test_labels > 0.5)
    assert result["test_accuracy"] == pytest.approx(hits.mean(), abs=1e-6)
    bright = test_labels > 0.5
    assert result["accuracy_by_type"]["bright"] == pytest.approx(hits[bright].mean())
    assert result["accuracy_by_type"]["dark"] == pytest.approx(hits[~bright].mean())
    loss = keras.losses.binary_crossentropy(test_labels[:, None], predictions[:, None])
    assert result["test_loss"] == pytest.approx(float(np.mean(loss)), rel=1e-4)
    assert result["params"] == 4 * 4 * 3 + 1
    assert (result["epochs_run"], result["seed"], result["batch_size"]) == (3, 5, 8)
    assert (result["train_examples"], result["test_examples"]) == (64, 24)
    assert sorted(result["history"]) == ["accuracy", "loss"]  # no validation split
    assert len(result["history"]["loss"]) == 3
    assert result["seconds_per_epoch"] == pytest.approx(result["train_seconds"] / 3)
    assert not result["stopped_early"] and result["initial_epoch"] == 0
    assert (tmp_path / "model.keras").is_file()  # the run directory keeps the final model
    assert [line.split("  ")[0] for line in lines[:3]] == [
        f"[tiny] epoch {n}/3" for n in (1, 2, 3)]
    assert lines[-1].startswith(f"[tiny] test accuracy {result['test_accuracy']:.4f} after 3")


def test_early_stopping_watches_the_validation_loss(monkeypatch):
    from mmcourse.train import callbacks as course_callbacks

    made, real = [], course_callbacks.make_callbacks
    monkeypatch.setattr(course_callbacks, "make_callbacks",
                        lambda *args, **kwargs: made.extend(real(*args, **kwargs)) or made)
    keras.utils.set_random_seed(0)
    train, test = _tiny_problem(32, 0), _tiny_problem(16, 1)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    splits = core.Splits(_dataset(*train), _dataset(*test), _dataset(*test),
                         {"train": 32, "validation": 16, "test": 16})
    result = core.fit_and_evaluate(
        _tiny_model(), splits, core.TrainConfig(epochs=2, batch_size=8, learning_rate=0.05,
                                                patience=1),
        test_labels=test[2], test_kinds=["pair"] * 16, name="tiny", log=lambda line: None,
        callbacks=[Spy()])
    assert seen[0] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert sorted(result["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    (stopper,) = [c for c in made if isinstance(c, keras.callbacks.EarlyStopping)]
    assert (stopper.patience, stopper.monitor, stopper.restore_best_weights) == (
        1, "val_loss", True)


def test_splits_with_options_keeps_a_missing_validation_split():
    data = _dataset(*_tiny_problem(8, 0))
    options = tf.data.Options()
    options.deterministic = True
    splits = core.Splits(data, None, data, {"train": 8, "validation": 0, "test": 8})
    sharded = splits.with_options(options)
    assert sharded.validation is None and sharded.sizes == splits.sizes
    assert sharded.train.options().deterministic is True
    assert sharded.test is not data
