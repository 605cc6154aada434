"""Scaling out with ``tf.distribute`` (introduced in notebook 05).

- ``use_logical_cpus(n)``: split the one physical CPU into ``n`` logical devices, so that
  ``MirroredStrategy`` has two "devices" to mirror over on a laptop. Must run before
  TensorFlow initialises its runtime (before the first tensor is created).
- ``make_strategy("default" | "mirrored" | "multiworker")``: the strategy for ``train
  --strategy``. ``mirrored`` uses every GPU when there are two or more, else two logical
  CPUs; ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable.
- ``global_batch_size``: the batch one optimiser step sees, summed over replicas.
- ``localhost_tf_config`` and ``free_ports``: a ``TF_CONFIG`` for workers on 127.0.0.1.
- ``is_chief`` / ``worker_dir``: only the chief writes to the run folder; other workers
  write to their own sub-folder (they must still save: saving is a collective step).
- ``prepare_model(model, dataset, strategy)``: builds a model for ``fit`` under a
  strategy without drawing a batch, and works around Keras 3's ``fit`` under
  ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).
- ``weights_fingerprint(model)``: sha256 of the weights, to compare runs exactly.

TensorFlow and Keras are imported inside the functions, so importing this module is light.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket

import numpy as np

STRATEGIES = ("default", "mirrored", "multiworker")


def use_logical_cpus(count: int = 2) -> list:
    """Split the first physical CPU into ``count`` logical devices; return them.

    TensorFlow fixes its devices when its runtime starts, so call this before any
    tensor exists (at the top of a script or of a notebook's setup cell). Calling it
    again with the same ``count`` is harmless; a different count after start-up raises
    a ``RuntimeError`` that says so. Introduced in notebook 05.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    import tensorflow as tf  # noqa: PLC0415

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return tf.config.list_logical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == count:
            return tf.config.list_logical_devices("CPU")
        raise RuntimeError(
            f"cannot make {count} logical CPUs: TensorFlow already started with {have}. "
            "Call mmcourse.train.distribute.use_logical_cpus() before any TensorFlow op "
            "(first thing in the script or notebook), or restart the kernel."
        ) from None
    return tf.config.list_logical_devices("CPU")


def make_strategy(name: str = "default", logical_cpus: int = 2):
    """The ``tf.distribute.Strategy`` called ``name`` (one of ``STRATEGIES``).

    ``default``: the no-op default strategy (one device). ``mirrored``: synchronous
    data parallelism on one machine, ``MirroredStrategy`` over all GPUs if there are
    two or more, else over ``logical_cpus`` logical CPU devices (see ``use_logical_cpus``).
    ``multiworker``: ``MultiWorkerMirroredStrategy``; each process reads its cluster
    and its own index from ``TF_CONFIG`` and blocks until every worker has joined.
    Introduced in notebook 05.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(STRATEGIES)}")
    if name == "mirrored":
        import tensorflow as tf  # noqa: PLC0415

        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) >= 2:
            return tf.distribute.MirroredStrategy()
        devices = [device.name for device in use_logical_cpus(logical_cpus)]
        return tf.distribute.MirroredStrategy(devices=devices)
    import tensorflow as tf  # noqa: PLC0415

    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def global_batch_size(per_replica_batch: int, num_replicas: int) -> int:
    """The batch one synchronous step consumes: ``per_replica_batch * num_replicas``.

    Batch the ``tf.data`` pipeline with this; the strategy splits each global batch
    into ``num_replicas`` equal parts. Introduced in notebook 05.
    """
    for arg, value in (("per_replica_batch", per_replica_batch), ("num_replicas", num_replicas)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    return int(per_replica_batch) * int(num_replicas)


def free_ports(count: int = 2, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now (the OS picks them).

    Introduced in notebook 05.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def localhost_tf_config(index: int, ports, host: str = "127.0.0.1") -> dict:
    """The ``TF_CONFIG`` dict of worker ``index`` in a cluster of ``len(ports)`` workers
    on ``host``: ``{"cluster": {"worker": ["127.0.0.1:P0", ...]}, "task": {"type":
    "worker", "index": index}}``. Export it as JSON: ``os.environ["TF_CONFIG"] =
    json.dumps(config)``. On real machines put each machine's host:port in the list,
    in the same order everywhere, and give each machine its own index.
    Introduced in notebook 05.
    """
    ports = [int(port) for port in ports]
    if not ports:
        raise ValueError("ports must name at least one port")
    if len(set(ports)) != len(ports):
        raise ValueError(f"ports must be distinct, got {ports}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not (
            0 <= index < len(ports)):
        raise ValueError(f"index must be an int in [0, {len(ports)}), got {index!r}")
    return {"cluster": {"worker": [f"{host}:{port}" for port in ports]},
            "task": {"type": "worker", "index": int(index)}}


def check_tf_config(text: str | None) -> dict:
    """Parse and check a ``TF_CONFIG`` JSON string; return it as a dict.

    Raises a ``ValueError`` that says what is missing (no variable, bad JSON, no worker
    list, an index outside it). Introduced in notebook 05.
    """
    if not text:
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable, "
                         'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    workers = config.get("cluster", {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task", {}) if isinstance(config, dict) else {}
    if not isinstance(workers, list) or not workers:
        raise ValueError(f"TF_CONFIG needs cluster.worker, a list of host:port, got {text!r}")
    index = task.get("index")
    if task.get("type") not in ("worker", "chief") or not isinstance(index, int) or not (
            0 <= index < len(workers)):
        raise ValueError(f"TF_CONFIG task must be {{'type': 'worker', 'index': i}} with "
                         f"0 <= i < {len(workers)}, got {task!r}")
    return config


def task_index() -> int:
    """This process's worker index from ``TF_CONFIG`` (0 when there is none)."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return 0
    return int(check_tf_config(text)["task"]["index"])


def is_chief() -> bool:
    """True for the worker that owns the outputs (worker 0, or when not multi-worker)."""
    return task_index() == 0


def worker_dir(run_dir) -> str:
    """Where this worker writes: ``run_dir`` for the chief, ``run_dir/worker_<i>``
    for worker ``i`` > 0 (every worker must save its checkpoint, since saving a
    distributed model is a collective step, but only the chief's copy is kept)."""
    index = task_index()
    return str(run_dir) if index == 0 else os.path.join(str(run_dir), f"worker_{index}")


def _is_multi_worker(strategy) -> bool:
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


_ORIGINAL_REDUCE = None


def prepare_model(model, dataset, strategy) -> None:
    """Build ``model``'s metrics and optimizer for ``model.fit(dataset)`` under
    ``strategy``, so that ``fit`` neither consumes a batch to do it nor fails.

    A model created in a strategy's scope makes Keras 3 draw one batch from a fresh
    iterator before training. That shifts a seeded, reshuffled dataset by one epoch
    (so a mirrored run would not see the batches a default run sees), and with
    ``MultiWorkerMirroredStrategy`` the reduction of that batch fails for tuple inputs.
    Keras 3.15 also reduces per-replica metric values with ``axis=0``, which fails on
    scalars with several workers (keras-team/keras#20585). This builds the model from
    ``dataset.element_spec`` in the strategy's scope, skips Keras's own build, and under
    several workers reads the metric values of the first local replica (Keras metric
    variables are synchronised, so every replica holds the global value). A no-op for a
    model created outside any strategy scope. Introduced in notebook 05.
    """
    global _ORIGINAL_REDUCE
    if getattr(model, "_distribute_strategy", None) is None:
        return
    if _is_multi_worker(strategy) and _ORIGINAL_REDUCE is None:
        from keras.src.backend.tensorflow import trainer as tf_trainer  # noqa: PLC0415

        _ORIGINAL_REDUCE = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction == "auto" and _is_multi_worker(strategy):
                reduction = "first"
            return _ORIGINAL_REDUCE(values, strategy, reduction)

        tf_trainer.reduce_per_replica = reduce_per_replica
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def weights_fingerprint(model_or_weights) -> str:
    """sha256 (hex) over the bytes of the model's weights, in ``model.get_weights()``
    order. Same seed and same strategy give the same fingerprint; any change to any
    weight changes it. Introduced in notebook 05.
    """
    weights = (model_or_weights.get_weights() if hasattr(model_or_weights, "get_weights")
               else model_or_weights)
    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    return digest.hexdigest()
