"""Regenerates docs/results/objects_table.jsonl: objects against pixels (issue 25, notebook 06).

Run from the repository root (about 25 minutes on 2 CPU cores, one training at a time):

    PYTHONPATH=. nice -n 19 .venv/bin/python docs/results/make_objects_table.py

``--only match`` (or ``qa``) retrains that task alone (about 20 minutes for match) and
replaces only its rows (``train``, ``model_noise``, and for qa ``model_overlap``), keeping
the other task's rows and the extractor's rows as they are: the extractor and the other
task's model are unchanged by it.

One JSON object per line, its ``experiment`` says which:

- ``train``: ``python -m mmcourse train --level relations --task T --fusion objects
  --seed S --json`` for T in qa, match and S in 0, 1, 2 (its defaults: 20 epochs, 80 for
  match, batches of 256, learning rate 5e-3, ``training.FUSION_DEFAULTS`` and
  ``TASK_FUSION_DEFAULTS``; the
  command's JSON, ``history`` dropped, plus ``command`` and ``wall_seconds``, the whole
  command's time, extraction and start-up included).
- ``extractor_noise``: the extractor against the generator's ground truth on the 1000 test
  scenes, with Gaussian pixel noise of standard deviation ``noise`` (0-255 scale, seeded):
  the share of scenes whose object count, colours, and centres (within 1 pixel) are right.
- ``model_noise``: the seed-0 qa and match models on the first 2000 test records, their
  object tokens extracted from the noisy images: accuracy by type.
- ``extractor_overlap`` and ``model_overlap``: 300 scenes of the relations generator whose
  first two objects are moved to ``gap`` pixels between their bounding extents (negative:
  overlapping, 0: touching; the second one drawn on top), the extractor scored as above
  and the seed-0 qa model on the generator's own 10 questions per scene.
"""

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mmcourse import REPO_ROOT, stats
from mmcourse.data import draw, objects, statements, text
from mmcourse.data import scenes as data

OUT = REPO_ROOT / "docs" / "results" / "objects_table.jsonl"
SEEDS = (0, 1, 2)
NOISE = (0, 20, 40, 60, 80, 100)
GAPS = (4, 2, 0, -2, -4, -6)
SCENES = 300


def train_rows(runs: Path, tasks=("qa", "match")):
    for task in tasks:
        for seed in SEEDS:
            command = [sys.executable, "-m", "mmcourse", "train", "--level", "relations",
                       "--task", task, "--fusion", "objects", "--seed", str(seed), "--run-dir",
                       str(runs / f"{task}-{seed}"), "--json"]
            start = time.perf_counter()
            done = subprocess.run(command, check=True, capture_output=True, text=True,
                                  cwd=REPO_ROOT)
            row = json.loads(done.stdout)
            row.pop("history")
            shown = ["python", *command[1:command.index("--run-dir")], "--json"]
            yield {"experiment": "train", **row, "command": shlex.join(shown),
                   "wall_seconds": time.perf_counter() - start}


def noisy(image, sigma, rng):
    if sigma == 0:
        return image
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def extractor_scores(images, scenes):
    checks = [objects.compare_with_scene(objects.detect_objects(image), scene)
              for image, scene in zip(images, scenes, strict=True)]
    return {name: float(np.mean([c[name] for c in checks]))
            for name in ("count_ok", "colours_ok", "centres_ok")}


def model_scores(model, images_by_name, records, root=None):
    tokens = np.stack([objects.object_tokens(images_by_name[r["image"]]) for r in records])
    token_ids = text.vectorize([r["text"] for r in records], root=root,
                               sequence_length=text.saved_sequence_length(root, "relations"))
    predictions = model.predict([tokens, token_ids], verbose=0, batch_size=256)
    return stats.accuracy_by_type(predictions, [r["label"] for r in records],
                                  [r["kind"] for r in records])


def noise_rows(models, extractor=True):
    folder = data.DATA_DIR / "relations" / "test"
    scenes = data.load_records("scenes", "relations", "test")
    clean = {s["image"]: data.read_image(folder / s["image"]) for s in scenes}
    for sigma in NOISE:
        rng = np.random.default_rng(sigma)
        images = {name: noisy(image, sigma, rng) for name, image in clean.items()}
        if extractor:
            yield {"experiment": "extractor_noise", "noise": sigma, "scenes": len(scenes),
                   **extractor_scores([images[s["image"]] for s in scenes],
                                      [s["objects"] for s in scenes])}
        for task, model in models.items():
            records = data.load_records(task, "relations", "test")[:2000]
            yield {"experiment": "model_noise", "task": task, "noise": sigma, "seed": 0,
                   "records": len(records),
                   "accuracy_by_type": model_scores(model, images, records)}


def moved_scene(rng, gap):
    """A relations scene whose first two objects are ``gap`` pixels apart (between their
    bounding extents), the second one on top, every other object clear of both."""
    while True:
        scene = data.random_scene(rng, "relations")
        a, b = scene[0], scene[1]
        reach = draw.object_extent(a) + draw.object_extent(b) + gap
        angle = rng.uniform(0, 2 * np.pi)
        b["x"] = int(round(a["x"] + reach * np.cos(angle)))
        b["y"] = int(round(a["y"] + reach * np.sin(angle)))
        inside = all(12 <= o["x"] <= 51 and 12 <= o["y"] <= 51 for o in scene)
        clear = all(statements.centre_distance(o, p)
                    >= draw.object_extent(o) + draw.object_extent(p) + 2
                    for i, o in enumerate(scene) for p in scene[i + 1:] if {id(o), id(p)}
                    != {id(a), id(b)})
        if inside and clear:
            return scene


def overlap_rows(qa_model):
    for gap in GAPS:
        rng = np.random.default_rng(100 + gap)
        scenes = [moved_scene(rng, gap) for _ in range(SCENES)]
        images = [draw.render_scene(scene) for scene in scenes]
        yield {"experiment": "extractor_overlap", "gap": gap, "scenes": SCENES,
               **extractor_scores(images, scenes)}
        records = []
        for index, scene in enumerate(scenes):
            for kind, question, answer in statements.draw_questions(scene, rng, "relations", 10):
                records.append({"image": index, "text": question, "kind": kind,
                                "label": statements.ANSWERS.index(answer)})
        yield {"experiment": "model_overlap", "task": "qa", "gap": gap, "seed": 0,
               "records": len(records),
               "accuracy_by_type": model_scores(qa_model, dict(enumerate(images)), records)}


def _key(row):
    """What a row measures: rows with the same key replace each other under ``--only``."""
    return (row["experiment"], row.get("task"), row.get("seed"), row.get("noise"),
            row.get("gap"))


def main(argv=None):
    import argparse

    from mmcourse.matcher.io import load_matcher

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("qa", "match"),
                        help="retrain this task alone and replace only its rows")
    args = parser.parse_args(argv)
    tasks = (args.only,) if args.only else ("qa", "match")
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for row in train_rows(Path(runs), tasks):
            print(json.dumps(row)[:300], flush=True)
            rows.append(row)
        models = {task: load_matcher(Path(runs) / f"{task}-0" / "model.keras")
                  for task in tasks}
        more = list(noise_rows(models, extractor=args.only is None))
        if "qa" in models:
            more += list(overlap_rows(models["qa"]))
        for row in more:
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.only:  # keep every other row, in its place
        new = {_key(row): row for row in rows}
        old = [json.loads(line) for line in OUT.read_text(encoding="utf-8").splitlines()]
        replaced = [new.pop(_key(row), row) if row.get("task") == args.only else row
                    for row in old]
        rows = replaced + list(new.values())
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(OUT)


if __name__ == "__main__":
    main()
