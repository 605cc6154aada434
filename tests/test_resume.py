"""A training run killed mid-run resumes from its backup (`train --resume`, notebook 05)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from mmcourse.train import callbacks

EPOCHS = 30
TIMEOUT_S = 240


def command(root, run_dir, *extra, epochs=EPOCHS):
    return [sys.executable, "-m", "mmcourse", "train", "--task", "match", "--fusion", "concat",
            "--epochs", str(epochs), "--seed", "0", "--train-size", "256", "--test-size", "64",
            "--batch-size", "64", "--root", str(root), "--run-dir", str(run_dir), "--json",
            *extra]


def wait_for_progress(process, progress_path, epochs_done: int = 1) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended (rc {process.returncode}) before the kill: "
                                 f"{process.stderr.read()[-3000:]}")
        if progress_path.exists():
            done = json.loads(progress_path.read_text())["epochs_done"]
            if done >= epochs_done:
                return
        time.sleep(0.05)
    raise AssertionError(f"no finished epoch within {TIMEOUT_S} s")


@pytest.mark.slow
def test_killed_run_resumes_from_its_backup(course_data, tmp_path):
    process = subprocess.Popen(command(course_data, tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_progress(process, tmp_path / "progress.json")
        process.send_signal(signal.SIGKILL)  # no chance to clean up, as in a crash
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = callbacks.saved_epoch(tmp_path)
    assert 1 <= saved < EPOCHS, saved

    resumed = subprocess.run(command(course_data, tmp_path, "--resume"), capture_output=True,
                             text=True, timeout=TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["initial_epoch"] == saved  # it continued after the saved epoch ...
    assert result["epochs_run"] == EPOCHS - saved  # ... and did not start from scratch
    assert f"resuming from epoch {saved}/{EPOCHS}" in resumed.stderr
    assert not (tmp_path / "backup").exists()  # a finished run removes its backup
    assert (tmp_path / "model.keras").exists() and (tmp_path / "best.keras").exists()


@pytest.mark.slow
def test_without_resume_a_stale_backup_is_discarded(course_data, tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 5, "batch": 0}')
    done = subprocess.run(command(course_data, tmp_path, epochs=2), capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["initial_epoch"] == 0 and result["epochs_run"] == 2


# --- the callback set and the schedules (no subprocess) -----------------------------------


def test_cosine_and_step_schedules():
    schedule = callbacks.cosine_schedule(0.01, epochs=11)
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(5) == pytest.approx(0.005)
    assert schedule(10) == pytest.approx(0.0, abs=1e-12)
    warm = callbacks.cosine_schedule(0.01, epochs=10, warmup_epochs=4)
    assert [round(warm(e), 6) for e in range(5)] == [0.002, 0.004, 0.006, 0.008, 0.01]
    step = callbacks.step_schedule(0.1, drop_every=2, factor=0.5)
    assert [step(e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="warmup_epochs must be in \\[0, epochs=3\\)"):
        callbacks.cosine_schedule(0.01, epochs=3, warmup_epochs=3)


def test_make_callbacks_builds_the_course_set(tmp_path):
    import keras

    made = callbacks.make_callbacks(tmp_path, epochs=3, patience=2, progress=True,
                                    schedule=callbacks.cosine_schedule(0.01, 3))
    names = [type(c).__name__ for c in made]
    assert names == ["LearningRateScheduler", "EarlyStopping", "ModelCheckpoint",
                     "BackupAndRestore", "EpochLog"]
    stopper = made[1]
    assert isinstance(stopper, keras.callbacks.EarlyStopping) and stopper.restore_best_weights
    assert made[2].filepath.endswith("best.keras")
    with pytest.raises(ValueError, match="run_dir is required"):
        callbacks.make_callbacks(None)
    with pytest.raises(ValueError, match="patience must be a non-negative int"):
        callbacks.make_callbacks(tmp_path, patience=-1)


def test_fit_restores_the_best_weights_and_cleans_up(tmp_path):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    flipped = tf.data.Dataset.from_tensor_slices((x, 1 - y)).batch(64)  # gets worse as it learns
    result = callbacks.fit(model, train, flipped, epochs=20, run_dir=tmp_path, patience=1)
    assert result["stopped_early"] and result["epochs_run"] < 20
    assert result["initial_epoch"] == 0 and not (tmp_path / "backup").exists()
    best = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    for restored, saved in zip(model.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_allclose(restored, saved)  # the best epoch's weights, both ways
    with pytest.raises(ValueError, match="resume=True needs the run_dir"):
        callbacks.fit(model, train, epochs=1, run_dir=None, resume=True)
