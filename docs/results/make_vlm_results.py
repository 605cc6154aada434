"""Regenerates docs/results/caption_table.jsonl and the trained models notebook 08 loads.

Run from the repository root:
    .venv/bin/python docs/results/make_vlm_results.py                     # everything
    .venv/bin/python docs/results/make_vlm_results.py relations --seeds 1 2   # only those

For each level and seed it trains one ``train.vlm.caption_backbone`` (the CLIP whose ViT
gives the frozen visual tokens, and the text decoder pre-trained on the captions) and on it
both architectures with ``train.vlm.train_captioner(..., backbone=...)``. One JSON object per
line and per (level, arch, seed): the ``train --task caption --json`` result; a rerun replaces
the rows it trains and keeps the others.

LLaVA and Flamingo get the same training: the same backbone, data, batch size and epochs per
stage, so the same number of optimizer steps. Steps, not seconds, because wall-clock time on
a shared 2-core machine varies with the other jobs; every row records the seconds each stage
took, so the notebook can compare those too.

From seed 0 at the attributes level it keeps, in docs/results/ (saved without optimizer
state, loadable with ``safe_mode=True``):
- vlm_decoder.keras: the pre-trained text decoder;
- vlm_llava_stage1_projector.keras: LLaVA's projector after stage 1 (the rest of the stage-1
  model is the frozen decoder and vision encoder, unchanged by stage 1);
- vlm_llava.keras and vlm_flamingo.keras: the captioners after stage 2;
- vlm_gate_trace.npz: tanh of every Flamingo gate before training and after every batch
  (``train.vlm.GateTrace``).
On 2 CPU cores shared with other jobs the attributes level (3 seeds, both architectures) took
30 minutes, and each relations seed about 10 more. ``bench_decode.json`` next to it is
``python -m mmcourse bench decode --json`` (notebook 08 reads it too).
"""

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np

from mmcourse import vlm
from mmcourse.train import vlm as train_vlm

HERE = Path(__file__).parent
TABLE = HERE / "caption_table.jsonl"
KEY = ("level", "arch", "seed")


class Stage1Projector(keras.callbacks.Callback):
    """Keeps a copy of the projector at the end of the first ``fit`` (stage 1)."""

    def __init__(self):
        super().__init__()
        self.projector = None

    def on_train_end(self, logs=None):
        if self.projector is None:
            projector = self.model.get_layer("projector")
            self.projector = keras.models.clone_model(projector)
            self.projector.set_weights(projector.get_weights())


def save(model, name):
    """Save ``model`` as docs/results/``name``, then drop its optimizer's state (a ``.keras``
    file keeps it, tripling the size): reload it without compiling, with ``safe_mode=True``
    as the notebook does, and save that."""
    model.save(HERE / name)
    keras.saving.load_model(HERE / name, safe_mode=True, compile=False).save(HERE / name)
    print(f"saved {name}: {(HERE / name).stat().st_size / 1e6:.2f} MB", file=sys.stderr)


def write(rows):
    rows = sorted(rows.values(), key=lambda r: (r["level"] != "attributes", r["seed"],
                                                r["arch"]))
    TABLE.write_text("".join(json.dumps(row) + "\n" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("levels", nargs="*", default=list(train_vlm.CAPTION_LENGTHS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    rows = {}
    for line in TABLE.read_text().splitlines() if TABLE.exists() else []:
        row = json.loads(line)
        rows[tuple(row[k] for k in KEY)] = row
    for level in args.levels:
        for seed in args.seeds:
            def log(message):
                print(message, file=sys.stderr, flush=True)

            backbone = train_vlm.caption_backbone(level, seed, log=log)
            keep = level == "attributes" and seed == 0
            if keep:
                save(backbone["decoder"], "vlm_decoder.keras")
            for arch in vlm.ARCHS:
                callbacks = [Stage1Projector() if arch == "llava" else train_vlm.GateTrace()]
                result = train_vlm.train_captioner(level, arch, seed, backbone=backbone,
                                                   callbacks=callbacks, keep_model=keep,
                                                   log=log)
                if keep:
                    save(result.pop("model"), f"vlm_{arch}.keras")
                    if arch == "llava":
                        save(callbacks[0].projector, "vlm_llava_stage1_projector.keras")
                    else:
                        trace = callbacks[0]
                        names = sorted(trace.gates)
                        np.savez(HERE / "vlm_gate_trace.npz", layers=np.array(names),
                                 gates=np.array([trace.gates[n] for n in names], np.float32),
                                 stage_starts=np.array(trace.stage_starts))
                rows[level, arch, seed] = result
                write(rows)
                log(json.dumps({k: result[k] for k in (*KEY, "exact_match",
                                                       "correct_statements", "train_seconds")}))


if __name__ == "__main__":
    main()
