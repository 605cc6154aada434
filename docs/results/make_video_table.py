"""Regenerates docs/results/video_table.jsonl: the video match models of notebook 13
(``mmcourse.train.video.train_video``, what ``train --task match --modality video --fusion F
--json`` prints), the temporal model and the frame-averaging baseline, seeds 0, 1 and 2.
About 15 to 25 minutes on 2 CPU cores shared with other jobs (train_seconds in the table).

``--learning-rate 2e-3`` regenerates docs/results/video_table_lr2e-3.jsonl instead: the
same models at the step size they had before ``video.VIDEO_LEARNING_RATE`` became 5e-4,
where the temporal model never read the shapes (notebook 13 shows both tables).

Run from the repository root:  .venv/bin/python docs/results/make_video_table.py [--learning-rate 2e-3]
"""

import argparse
import json
import sys
from pathlib import Path

from mmcourse.clip import video
from mmcourse.train import video as video_training

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rate", default=None,
                        help="Adam's step, as written in the file name, e.g. 2e-3 "
                             "(default video.VIDEO_LEARNING_RATE, into video_table.jsonl)")
    args = parser.parse_args()
    learning_rate, name = video.VIDEO_LEARNING_RATE, "video_table.jsonl"
    if args.learning_rate is not None:
        try:
            learning_rate = float(args.learning_rate)
        except ValueError:
            learning_rate = -1.0
        if not learning_rate > 0:
            parser.error(f"--learning-rate must be a positive number, got {args.learning_rate!r}")
        name = f"video_table_lr{args.learning_rate}.jsonl"
    rows = []
    for seed in (0, 1, 2):
        for fusion in video.FUSIONS:
            result = video_training.train_video(fusion, seed=seed, learning_rate=learning_rate,
                                                log=lambda m: print(m, file=sys.stderr))
            rows.append(result)
            (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
