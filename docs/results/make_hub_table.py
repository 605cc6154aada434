"""Regenerates docs/results/hub_caption_table.jsonl and the tiny PaliGemma preset notebook 11
loads (docs/results/tiny_paligemma_pretrained_attributes/).

Run from the repository root:
    .venv/bin/python docs/results/make_hub_table.py                  # seeds 0 1 2, attributes
    .venv/bin/python docs/results/make_hub_table.py --seeds 3 --level relations
    .venv/bin/python docs/results/make_hub_table.py --vision-epochs 11 --epochs 14  # LLaVA's steps

One JSON object per line and per (level, arch, seed, epochs, vision_epochs): the result of
``python -m mmcourse train --task caption --arch paligemma --json``
(``hub_training.train_paligemma_captioner``, its defaults unless ``--epochs`` or
``--vision-epochs`` is given); a rerun replaces the rows it trains and keeps the others. Seed 0
of the attributes level with the default epochs is kept as a preset folder.

The rows of arch ``paligemma_scratch`` and the preset docs/results/tiny_paligemma_attributes/
(which notebooks 12-13, ``finetune``, ``quantize`` and their tests use) are the earlier recipe,
without ``pretrain_vision``: ``train_paligemma_captioner(level, seed, vision_epochs=0,
vit_patch_size=16)``; this script does not rewrite them. Nor does it rewrite the rows of
arch ``paligemma_meanpool``: the recipe up to commit 7f84ed7, whose ``pretrain_vision`` read the
mean of the image tokens instead of their maximum.
"""

import argparse
import json
import sys
from pathlib import Path

from mmcourse.hub import presets as hub_presets
from mmcourse.train import hub as hub_training

HERE = Path(__file__).parent
TABLE = HERE / "hub_caption_table.jsonl"
PRESET = HERE / "tiny_paligemma_pretrained_attributes"
KEY = ("level", "arch", "seed", "epochs", "vision_epochs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--level", default="attributes", choices=["attributes", "relations"])
    parser.add_argument("--epochs", type=int, help="epochs of captions (default: the trainer's)")
    parser.add_argument("--vision-epochs", type=int,
                        help="epochs of pretrain_vision (default: the trainer's)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in TABLE.read_text().splitlines()] \
        if TABLE.exists() else []
    for seed in args.seeds:
        result = hub_training.train_paligemma_captioner(
            args.level, seed, epochs=args.epochs, vision_epochs=args.vision_epochs,
            keep_model=True, log=lambda m: print(m, file=sys.stderr))
        model = result.pop("model")
        print(json.dumps({k: result[k] for k in ("seed", "exact_match", "token_accuracy",
                                                  "train_seconds")}), file=sys.stderr)
        if (seed, args.level, args.epochs, args.vision_epochs) == (0, "attributes", None, None):
            hub_presets.save_preset(model, PRESET)
        key = tuple(result[k] for k in KEY)
        rows = [r for r in rows if tuple(r.get(k) for k in KEY) != key] + [result]
        partial = TABLE.with_suffix(".jsonl.partial")
        partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
        partial.replace(TABLE)


if __name__ == "__main__":
    main()
