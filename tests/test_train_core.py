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


def test_fit_summary_takes_the_run_from_the_fit_and_the_options_from_the_config():
    # A run stopped early after 2 of 3 epochs: epochs_run is the fit's, not the config's.
    fitted = {"history": {"loss": [0.5, 0.25]}, "epochs_run": 2, "train_seconds": 1.5,
              "stopped_early": True}
    config = core.TrainConfig(epochs=3, batch_size=8, learning_rate=0.05, seed=5)
    assert core.fit_summary(_tiny_model(), fitted, config) == {
        "params": 4 * 4 * 3 + 1, "train_seconds": 1.5, "epochs_run": 2, "seed": 5,
        "batch_size": 8, "learning_rate": 0.05, "history": {"loss": [0.5, 0.25]}}


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


# --- fit_logged and warmup_cosine, the pieces the CLIP, CLAP, video and VLM trainers share ---


def _arrays_model(seed):
    keras.utils.set_random_seed(seed)
    return _tiny_model()


def test_fit_logged_on_arrays_is_keras_fit_with_the_config_and_one_line_per_epoch():
    images, token_ids, labels = _tiny_problem(40, 0)
    config = core.TrainConfig(epochs=3, batch_size=16, learning_rate=0.05, seed=0)
    lines, batches = [], []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    mine = _arrays_model(7)
    fitted = core.fit_logged(mine, [images, token_ids], config, targets=labels, name="tiny",
                             log=lines.append, callbacks=[Count()],
                             extras=lambda: {"answer": 42})
    # Keras itself, from the same seed: the same shuffled batches give the same history
    theirs = _arrays_model(7)
    history = theirs.fit([images, token_ids], labels, batch_size=16, epochs=3, shuffle=True,
                         verbose=0).history
    assert fitted["history"] == {key: [float(v) for v in values]
                                 for key, values in history.items()}
    for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert batches == [0, 1, 2] * 3  # ceil(40 / 16) = 3 batches in each of 3 epochs
    assert fitted["epochs_run"] == 3 and set(fitted) == {"history", "epochs_run",
                                                         "train_seconds"}
    assert lines == ["  ".join([f"[tiny] epoch {n}/3", *(
        f"{key} {values[n - 1]:.4f}" for key, values in history.items()), "answer 42.0000"])
        for n in (1, 2, 3)]
    assert sorted(history) == ["accuracy", "loss"]


def test_fit_logged_on_a_dataset_takes_its_batches_as_they_come_and_times_the_fit():
    import time

    images, token_ids, labels = _tiny_problem(20, 1)
    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    model = _arrays_model(3)
    dataset = tf.data.Dataset.from_tensor_slices(((images, token_ids), labels)).batch(8)
    start = time.perf_counter()
    fitted = core.fit_logged(model, dataset, core.TrainConfig(epochs=2, batch_size=64),
                             name="tiny", log=None, callbacks=[Count()])
    elapsed = time.perf_counter() - start
    assert batches == [0, 1, 2] * 2  # the dataset's batches of 8 (ceil(20 / 8) = 3), not 64
    assert fitted["epochs_run"] == 2 and len(fitted["history"]["loss"]) == 2
    assert 0 < fitted["train_seconds"] <= elapsed
    # unshuffled batches in order: the same as Keras on the same dataset from the same seed
    theirs = _arrays_model(3)
    history = theirs.fit(dataset, epochs=2, shuffle=False, verbose=0).history
    assert fitted["history"]["loss"] == [float(v) for v in history["loss"]]


def test_fit_logged_hands_the_epochs_and_its_callbacks_to_the_given_fit():
    seen = {}

    def fit(model, data, *, epochs, callbacks):
        seen.update(model=model, data=data, epochs=epochs, callbacks=callbacks)
        for epoch in range(2):  # stopped early after 2 of 5 epochs
            callbacks[0].on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
        return {"history": {"loss": [1.0, 0.5]}, "stopped_early": True}

    lines = []
    fitted = core.fit_logged("model", "data", core.TrainConfig(epochs=5), name="x",
                             log=lines.append, callbacks=["mine"], fit=fit)
    assert (seen["model"], seen["data"], seen["epochs"]) == ("model", "data", 5)
    assert seen["callbacks"][1:] == ["mine"]  # after the epoch log
    assert lines == ["[x] epoch 1/5  loss 1.0000", "[x] epoch 2/5  loss 0.5000"]
    assert (fitted["epochs_run"], fitted["stopped_early"]) == (2, True)


@pytest.mark.parametrize(("examples", "epochs", "steps", "decay_steps"), [
    (100, 4, 4, 12),  # ceil(100 / 32) = 4 steps an epoch; 3 epochs of decay
    (64, 3, 2, 4),
    (10, 1, 1, 1),  # one epoch: all warm-up, decay over one step
])
def test_warmup_cosine_by_hand(examples, epochs, steps, decay_steps):
    model = _tiny_model()
    config = core.TrainConfig(epochs=epochs, batch_size=32, learning_rate=0.01)
    core.warmup_cosine(model, config, examples)

    def rate(step):  # Keras' own reading of the rate at an optimizer step
        model.optimizer.iterations.assign(step)
        return float(model.optimizer.learning_rate)

    def by_hand(step):  # linear from 0 to 0.01 over `steps`, then cosine to 2 % of 0.01
        if step < steps:
            return 0.01 * step / steps
        progress = min(step - steps, decay_steps) / decay_steps
        return 0.01 * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress)))

    for step in (0, steps // 2, steps, steps + decay_steps // 2, steps + decay_steps,
                 steps + decay_steps + 5):
        assert rate(step) == pytest.approx(by_hand(step), rel=1e-5, abs=1e-9), step


def test_the_trainers_check_their_options_with_train_config_before_reading_data():
    from mmcourse.train import clap, video
    from mmcourse.train import clip as clip_training

    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        clip_training.train_clip("attributes", epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="learning_rate must be a positive number, got -1"):
        clap.train_clap(epochs=1, learning_rate=-1)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        video.train_video("average", epochs=0)


def test_train_hub_clip_fills_only_the_unset_options_from_its_defaults(monkeypatch):
    from mmcourse.train import clip as clip_training
    from mmcourse.train import hub_clip

    calls = []

    def fake(level, epochs, seed, root, **options):
        calls.append({"epochs": epochs, "seed": seed, **options})
        return {}

    monkeypatch.setattr(clip_training, "train_clip", fake)
    hub_clip.train_hub_clip("attributes", None, 4, batch_size=8)
    hub_clip.train_hub_clip("attributes", 2, 4, learning_rate=1e-4)
    assert [(c["epochs"], c["batch_size"], c["learning_rate"]) for c in calls] == [
        (25, 8, 3e-3), (2, 64, 1e-4)]
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        hub_clip.train_hub_clip("attributes", 0)
