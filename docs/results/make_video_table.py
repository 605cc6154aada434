"""Regenerates docs/results/video_table.jsonl: the video match models of notebook 13
(``mmcourse.video.train_video``, what ``train --task match --modality video --fusion F
--json`` prints), the temporal model and the frame-averaging baseline, seeds 0, 1 and 2.
About 25 minutes on 2 CPU cores shared with other jobs (train_seconds in the table).

Run from the repository root:  .venv/bin/python docs/results/make_video_table.py
"""

import json
import sys
from pathlib import Path

from mmcourse import video

HERE = Path(__file__).parent


def main() -> None:
    rows = []
    for seed in (0, 1, 2):
        for fusion in video.FUSIONS:
            result = video.train_video(fusion, seed=seed, log=lambda m: print(m, file=sys.stderr))
            rows.append(result)
            (HERE / "video_table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
