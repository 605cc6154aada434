"""Regenerates docs/results/transformer_table.jsonl: the transformer over pixels whose regions
are taught where the objects are (notebook 06, section 11).

Run from the repository root (about 40 minutes on 2 quiet CPU cores, one training at a time):

    PYTHONPATH=. .venv/bin/python docs/results/make_transformer_table.py

Each line is the JSON of one command,

    python -m mmcourse train --level relations --task T --fusion transformer --seed S --json

for T = qa with S in 0-4 and T = match with S in 0-2 (the command's defaults: 20 epochs on
whole scenes, 40 for match, 16 scenes a batch, ``training.FUSION_DEFAULTS`` and
``TASK_FUSION_DEFAULTS``), plus ``command`` and
``wall_seconds``: the whole command's time, start-up, data loading and scoring included,
which is what the five-minute budget is about. ``--only qa`` (or ``match``) reruns one task
and keeps the other's rows.
"""

import json
import shlex
import subprocess
import sys
import time

from mmcourse import REPO_ROOT

OUT = REPO_ROOT / "docs" / "results" / "transformer_table.jsonl"
SEEDS = {"qa": (0, 1, 2, 3, 4), "match": (0, 1, 2)}


def run(task: str, seed: int) -> dict:
    command = [sys.executable, "-m", "mmcourse", "train", "--level", "relations", "--task",
               task, "--fusion", "transformer", "--seed", str(seed), "--json"]
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=True,
                              cwd=REPO_ROOT)
    wall = time.perf_counter() - start
    shown = ["python", *command[1:]]
    return {**json.loads(finished.stdout), "command": shlex.join(shown), "wall_seconds": wall}


def main(argv) -> None:
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    if only not in (None, *SEEDS):
        raise SystemExit(f"--only must be one of {', '.join(SEEDS)}, got {only!r}")
    kept = [json.loads(line) for line in OUT.read_text().splitlines()] \
        if only and OUT.exists() else []
    rows = [row for row in kept if row["task"] != only]
    for task, seeds in SEEDS.items():
        if only not in (None, task):
            continue
        for seed in seeds:
            row = run(task, seed)
            print(f"{task} seed {seed}: relational {row['accuracy_by_type']['relational']:.3f}, "
                  f"{row['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
            rows.append(row)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(OUT)


if __name__ == "__main__":
    main(sys.argv[1:])
