"""Regenerates docs/results/sound_table.jsonl: the audio-text model of notebook 13
(``mmcourse.train.clap.train_clap``, what ``train --task retrieval --modality audio --json``
prints), one JSON object per line, for the small CNN and the AST-style transformer over the
log-mel, seeds 0, 1 and 2 each. Keeps the seed-0 CNN as docs/results/clap_audio.keras
(notebook 13 loads it). About 8 minutes on 2 CPU cores.

Run from the repository root:  .venv/bin/python docs/results/make_sound_table.py
"""

import json
import sys
from pathlib import Path

from mmcourse.clip import clap
from mmcourse.train import clap as clap_training

HERE = Path(__file__).parent


def main() -> None:
    rows = []
    for arch in clap.ARCHS:
        for seed in (0, 1, 2):
            result = clap_training.train_clap(seed=seed, arch=arch, keep_model=True,
                                              log=lambda m: print(m, file=sys.stderr))
            model = result.pop("model")
            if arch == "cnn" and seed == 0:
                model.save(HERE / "clap_audio.keras")
            rows.append(result)
            print(json.dumps({k: result[k] for k in ("arch", "seed", "recall_at_1",
                                                     "zero_shot_accuracy", "train_seconds")}),
                  file=sys.stderr)
            (HERE / "sound_table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
