"""tf.distribute helpers and `train --strategy` (mmcourse.train.distribute, notebook 05).

Agreement tolerance, stated: with the same seed and the same global batch, the
`mirrored` run (2 logical CPUs) and the `multiworker` run (2 processes on 127.0.0.1)
end with weights within 1e-4 (max absolute difference) of the `default` run after
8 optimiser steps, and test accuracies within 0.02; only the order of floating-point
sums differs. The same seed and strategy give the same weights fingerprint.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from mmcourse.train import distribute

SMALL_RUN = ["--task", "match", "--fusion", "concat", "--epochs", "2", "--seed", "3",
             "--train-size", "256", "--test-size", "128", "--batch-size", "64"]
WEIGHT_TOLERANCE = 1e-4
ACCURACY_TOLERANCE = 0.02
TIMEOUT_S = 240


def train_command(root, run_dir, *extra):
    return [sys.executable, "-m", "mmcourse", "train", *SMALL_RUN, "--root", str(root),
            "--run-dir", str(run_dir), "--json", *extra]


def run_train(root, run_dir, *extra, env=None):
    done = subprocess.run(train_command(root, run_dir, *extra), capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def final_weights(run_dir):
    import keras

    return keras.saving.load_model(run_dir / "model.keras", safe_mode=True).get_weights()


def max_difference(weights_a, weights_b):
    assert len(weights_a) == len(weights_b)
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights_a, weights_b, strict=True))


# --- helpers ----------------------------------------------------------------------------


def test_global_batch_size():
    assert distribute.global_batch_size(32, 4) == 128
    with pytest.raises(ValueError, match="num_replicas must be a positive int, got 0"):
        distribute.global_batch_size(32, 0)
    with pytest.raises(ValueError, match="per_replica_batch"):
        distribute.global_batch_size(2.5, 2)


def test_localhost_tf_config_and_its_check():
    config = distribute.localhost_tf_config(1, [20001, 20002])
    assert config == {"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
                      "task": {"type": "worker", "index": 1}}
    assert distribute.check_tf_config(json.dumps(config)) == config
    with pytest.raises(ValueError, match="index must be an int in \\[0, 2\\)"):
        distribute.localhost_tf_config(2, [20001, 20002])
    with pytest.raises(ValueError, match="distinct"):
        distribute.localhost_tf_config(0, [20001, 20001])
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.check_tf_config(None)
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.check_tf_config("{cluster")
    with pytest.raises(ValueError, match="0 <= i < 1"):
        distribute.check_tf_config('{"cluster": {"worker": ["a:1"]}, '
                                   '"task": {"type": "worker", "index": 3}}')


def test_free_ports_are_distinct_and_bindable():
    import socket

    ports = distribute.free_ports(3)
    assert len(set(ports)) == 3
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_worker_dir_and_chief(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief() and distribute.worker_dir(tmp_path) == str(tmp_path)
    monkeypatch.setenv("TF_CONFIG", json.dumps(distribute.localhost_tf_config(1, [1, 2])))
    assert not distribute.is_chief()
    assert distribute.worker_dir(tmp_path) == str(tmp_path / "worker_1")


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(ValueError, match="default, mirrored, multiworker"):
        distribute.make_strategy("tpu")


def test_weights_fingerprint_sees_any_change():
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]
    first = distribute.weights_fingerprint(weights)
    assert first == distribute.weights_fingerprint([w.copy() for w in weights])
    weights[1][2] = np.nextafter(np.float32(1), np.float32(2))
    assert distribute.weights_fingerprint(weights) != first
    assert len(first) == 64


# --- train --strategy -------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(course_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("default")
    return run_train(course_data, run_dir, "--strategy", "default"), run_dir


@pytest.mark.slow
def test_same_seed_same_fingerprint(course_data, default_run, tmp_path):
    first, _ = default_run
    again = run_train(course_data, tmp_path, "--strategy", "default")
    assert again["weights_sha256"] == first["weights_sha256"]
    assert again["test_accuracy"] == first["test_accuracy"]


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_agrees_with_default(course_data, default_run, tmp_path):
    single, single_dir = default_run
    mirrored = run_train(course_data, tmp_path, "--strategy", "mirrored")
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert mirrored["epochs_run"] == single["epochs_run"] == 2
    difference = max_difference(final_weights(tmp_path), final_weights(single_dir))
    assert difference < WEIGHT_TOLERANCE, difference
    assert abs(mirrored["test_accuracy"] - single["test_accuracy"]) <= ACCURACY_TOLERANCE


@pytest.mark.slow
def test_two_multiworker_processes_on_localhost_agree_with_default(course_data, default_run,
                                                                   tmp_path):
    single, single_dir = default_run
    ports = distribute.free_ports(2)
    workers = []
    try:
        for index in range(2):
            env = dict(os.environ, TF_CONFIG=json.dumps(
                distribute.localhost_tf_config(index, ports)))
            workers.append(subprocess.Popen(
                train_command(course_data, tmp_path, "--strategy", "multiworker"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        outputs = [worker.communicate(timeout=TIMEOUT_S) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    chief, other = (json.loads(stdout) for stdout, _ in outputs)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["weights_sha256"] == other["weights_sha256"]  # the replicas stay in sync
    assert (tmp_path / "model.keras").exists() and (tmp_path / "worker_1").is_dir()
    difference = max_difference(final_weights(tmp_path), final_weights(single_dir))
    assert difference < WEIGHT_TOLERANCE, difference
    assert abs(chief["test_accuracy"] - single["test_accuracy"]) <= ACCURACY_TOLERANCE
