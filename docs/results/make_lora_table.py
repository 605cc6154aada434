"""Regenerates docs/results/lora_table.jsonl: the tiny PaliGemma preset of notebook 11
(docs/results/tiny_paligemma_attributes, trained on English captions) adapted to Chinese
captions of new scenes, in five settings: frozen, LoRA rank 1, 4 and 16, full fine-tuning.

Run from the repository root (about 15 minutes on 2 CPU cores):
    .venv/bin/python docs/results/make_lora_table.py                 # seeds 0 1 2
    .venv/bin/python docs/results/make_lora_table.py --seeds 3

The data: ``scans.write_shapes_folder(count=400, seed=5, language="zh")`` in a temporary
folder, split by image (``finetune.load_caption_folder``). Every setting trains for the same
epochs and batches; LoRA at learning rate 1e-2 (its adapter starts at zero and is small),
full fine-tuning at notebook 11's 2e-3. One JSON object per line and per (setting, seed); a
rerun replaces the rows it trains and keeps the others.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from mmcourse.apps import finetune
from mmcourse.data import scans
from mmcourse.hub import presets as hub_presets

HERE = Path(__file__).parent
TABLE = HERE / "lora_table.jsonl"
PRESET = HERE / "tiny_paligemma_attributes"
SETTINGS = ("frozen", 1, 4, 16, "full")
LEARNING_RATES = {"full": 2e-3}
LORA_LEARNING_RATE = 1e-2
EPOCHS = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in TABLE.read_text().splitlines()] \
        if TABLE.exists() else []
    with tempfile.TemporaryDirectory() as folder:
        own = scans.write_shapes_folder(Path(folder) / "zh", count=400, seed=5,
                                        language="zh")
        data = finetune.load_caption_folder(own, 64)
        for seed in args.seeds:
            for setting in SETTINGS:
                model = finetune.load_with_adapter(PRESET)
                result = finetune.finetune(
                    model, data, setting, epochs=EPOCHS, seed=seed,
                    learning_rate=LEARNING_RATES.get(setting, LORA_LEARNING_RATE),
                    prompt=hub_presets.PROMPTS["zh"])
                result.update(seed=seed, learning_rate=LEARNING_RATES.get(
                    setting, LORA_LEARNING_RATE) if setting != "frozen" else None)
                if isinstance(setting, int):
                    path = finetune.save_adapter(model, Path(folder) / f"r{setting}.lora.h5")
                    result["adapter_bytes"] = path.stat().st_size
                print(json.dumps({k: result[k] for k in ("setting", "seed", "trainable_params",
                                                          "exact_match_after",
                                                          "train_seconds")}),
                      file=sys.stderr, flush=True)
                rows = [r for r in rows if (r["setting"], r["seed"]) != (setting, seed)]
                rows.append(result)
                partial = TABLE.with_suffix(".partial")  # atomic: a stop keeps the old table
                partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
                os.replace(partial, TABLE)


if __name__ == "__main__":
    main()
