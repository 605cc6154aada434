"""Regenerates docs/results/hub_clip_table.jsonl: KerasHub's CLIP trained with notebook 07's
contrastive loss (``python -m mmcourse train --task retrieval --arch keras_hub_clip --json``).

Run from the repository root (one run is a few minutes on 2 cores):
    .venv/bin/python docs/results/make_hub_clip_table.py                 # seeds 0 1 2
    .venv/bin/python docs/results/make_hub_clip_table.py --seeds 3 --epochs 40

One JSON object per line and per (level, arch, model_options, epochs, seed): the result of
``hub_clip.train_hub_clip`` (without its per-epoch history); a rerun replaces the rows it
trains and keeps the others. Notebook 07's CLIP on the same pairs is in clip_table.jsonl.
"""

import argparse
import json
import sys
from pathlib import Path

from mmcourse.train import hub_clip

HERE = Path(__file__).parent
TABLE = HERE / "hub_clip_table.jsonl"


def _key(row):
    return (row["level"], row["arch"], json.dumps(row["model_options"], sort_keys=True),
            row["epochs_run"], row["seed"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--level", default="attributes", choices=["attributes", "relations"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--options", type=json.loads, default={},
                        help='JSON model options, e.g. \'{"stem_filters": []}\'')
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in TABLE.read_text().splitlines()] \
        if TABLE.exists() else []
    for seed in args.seeds:
        result = hub_clip.train_hub_clip(args.level, args.epochs, seed,
                                         model_options=args.options,
                                         log=lambda m: print(m, file=sys.stderr, flush=True))
        result.pop("history")
        print(json.dumps({"seed": seed, "recall_at_1": result["recall_at_1"],
                          "zero_shot_accuracy": result["zero_shot_accuracy"],
                          "train_seconds": result["train_seconds"]}), file=sys.stderr)
        rows = [r for r in rows if _key(r) != _key(result)] + [result]
        partial = TABLE.with_suffix(".jsonl.partial")
        partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
        partial.replace(TABLE)


if __name__ == "__main__":
    main()
