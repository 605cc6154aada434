"""Regenerates notebook 05's multi-seed results (one JSON object per line):

- docs/results/remedies.jsonl: every remedy of `mmcourse.train.regularization.compare_remedies`
  (baseline, augmentation, L2, dropout, early stopping, combined) on notebook 05's
  over-fitting set-up (256 training pairs, 20 epochs, batch 32, Adam 5e-3, 128 hidden units;
  L2 1e-3, dropout 0.3, patience 5), seeds 0-4. Early stopping chooses its epoch on the 256
  validation pairs; every model is scored on the whole attribute-level test split (1,000
  pairs), which no run sees during training.
- docs/results/optimisers.jsonl: SGD, SGD with momentum 0.9 and Adam, each at learning rates
  0.001, 0.01 and 0.1, on 1,000 training pairs for 10 epochs (batch 32), seeds 0-2; per run
  the training loss of every epoch and the final validation accuracy.

Run from the repository root (about 20 minutes on 2 shared CPU cores):
    .venv/bin/python docs/results/make_training_tables.py [remedies] [optimisers]
The seed sets both the initial weights and the order (and augmentation) of the batches.
"""

from __future__ import annotations

import json
import os
import sys
import time

# As notebook 05: oneDNN's fused kernels round differently from run to run; the plain kernels
# repeat exactly on one machine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mmcourse import REPO_ROOT
from mmcourse.data import (
    pipeline,
    store,
    text,  # noqa: E402
)
from mmcourse.matcher.model import build_model  # noqa: E402
from mmcourse.train import regularization
from mmcourse.train.tasks import load_split  # noqa: E402

RESULTS = REPO_ROOT / "docs" / "results"
REMEDY_SEEDS = (0, 1, 2, 3, 4)
OPTIMISER_SEEDS = (0, 1, 2)
OPTIMISERS = ("sgd", "momentum", "adam")
LEARNING_RATES = (0.001, 0.01, 0.1)
REMEDY_SETTINGS = {"train_examples": 256, "val_examples": 256, "epochs": 20, "batch_size": 32,
                   "learning_rate": 0.005, "hidden_units": 128, "l2": 1e-3, "dropout": 0.3,
                   "patience": 5}
OPTIMISER_SETTINGS = {"train_examples": 1000, "val_examples": 256, "epochs": 10,
                      "batch_size": 32}


def make_optimizer(name: str, learning_rate: float):
    import keras  # noqa: PLC0415

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(f"optimizer must be one of {OPTIMISERS}, got {name!r}")


def remedies(root) -> list[dict]:
    s = REMEDY_SETTINGS
    train = load_split("match", "attributes", "train", root=root, limit=s["train_examples"])
    val = load_split("match", "attributes", "val", root=root, limit=s["val_examples"])
    test = load_split("match", "attributes", "test", root=root)
    vocabulary = text.load_vocabulary(root)
    val_data = pipeline.dataset_from_arrays(*val, batch_size=128)
    test_data = pipeline.dataset_from_arrays(*test, batch_size=128)
    rows = []
    for seed in REMEDY_SEEDS:
        def make_train_data(augment=False, seed=seed):
            return pipeline.dataset_from_arrays(*train, batch_size=s["batch_size"], shuffle=True,
                                                seed=seed, augment=augment,
                                                vocabulary=vocabulary, rotate=True)

        def build():
            return build_model("match", "concat", root=root, learning_rate=s["learning_rate"],
                               hidden_units=s["hidden_units"])

        start = time.perf_counter()
        histories, seed_rows = regularization.compare_remedies(
            build, make_train_data, val_data, epochs=s["epochs"], l2=s["l2"],
            dropout=s["dropout"], patience=s["patience"], seed=seed, test_data=test_data)
        for row in seed_rows:
            row.update(seed=seed, test_examples=len(test[2]), **s,
                       history={key: [float(v) for v in values]
                                for key, values in histories[row["remedy"]].items()})
            rows.append(row)
        print(f"remedies seed {seed}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return rows


def optimisers(root) -> list[dict]:
    import keras  # noqa: PLC0415

    s = OPTIMISER_SETTINGS
    train = load_split("match", "attributes", "train", root=root, limit=s["train_examples"])
    val = load_split("match", "attributes", "val", root=root, limit=s["val_examples"])
    val_data = pipeline.dataset_from_arrays(*val, batch_size=128)
    rows = []
    for seed in OPTIMISER_SEEDS:
        for name in OPTIMISERS:
            for learning_rate in LEARNING_RATES:
                start = time.perf_counter()
                keras.utils.set_random_seed(seed)
                model = build_model("match", "concat", root=root)
                model.compile(optimizer=make_optimizer(name, learning_rate),
                              loss="binary_crossentropy", metrics=["accuracy"])
                train_data = pipeline.dataset_from_arrays(
                    *train, batch_size=s["batch_size"], shuffle=True, seed=seed)
                history = model.fit(train_data, epochs=s["epochs"], shuffle=False, verbose=0)
                val_loss, val_accuracy = regularization.data_loss_accuracy(model, val_data)
                rows.append({"optimizer": name, "learning_rate": learning_rate, "seed": seed,
                             **s, "loss": [float(v) for v in history.history["loss"]],
                             "val_loss": val_loss, "val_accuracy": val_accuracy,
                             "seconds": time.perf_counter() - start})
                print(f"{name} lr {learning_rate} seed {seed}: loss {rows[-1]['loss'][-1]:.3f}"
                      f" val acc {val_accuracy:.3f} ({rows[-1]['seconds']:.0f} s)",
                      file=sys.stderr)
    return rows


def main(which) -> None:
    root = store.ensure_data()
    for name in which:
        rows = {"remedies": remedies, "optimisers": optimisers}[name](root)
        path = RESULTS / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        print(f"wrote {len(rows)} rows to {path.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:] or ["remedies", "optimisers"])
