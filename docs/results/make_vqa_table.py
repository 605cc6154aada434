"""Regenerates docs/results/vqa_table.jsonl: VQA by generation (notebook 08) with
``mmcourse.train.vlm.train_vqa`` at the relations level, one JSON object per line: the
``python -m mmcourse train --task vqa --level relations --arch ARCH --seed SEED --json``
result (accuracy, accuracy_by_type, params, trainable_params, train_seconds, seconds per
step, stages, epochs, seed, samples, ...).

Run from the repository root:
    .venv/bin/python docs/results/make_vqa_table.py [--seeds 0 1 2] [--archs llava flamingo]
    .venv/bin/python docs/results/make_vqa_table.py --summary   # relational accuracy only

Each seed's CLIP is trained once and shared by both architectures (training it is
deterministic, so each row is the command's result); its seconds are counted in every row's
``train_seconds``, as the command counts them. Rows are appended as they finish, so a
partial run keeps what it measured; the file is started afresh unless ``--append``.
Measured: 6 to 20 minutes per row, CLIP included, on 2 busy shared CPU cores.
"""

import argparse
import json
import sys
from pathlib import Path

from mmcourse import vlm
from mmcourse.train import clip
from mmcourse.train import vlm as train_vlm

TABLE = Path(__file__).parent / "vqa_table.jsonl"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--archs", nargs="+", default=list(vlm.ARCHS), choices=vlm.ARCHS)
    parser.add_argument("--append", action="store_true", help="keep the rows already there")
    parser.add_argument("--summary", action="store_true",
                        help="train nothing: summarise the rows already there")
    args = parser.parse_args()
    if args.summary:
        summarise()
        return
    if not args.append:
        TABLE.write_text("")
    for seed in args.seeds:
        log(f"CLIP for seed {seed}, {train_vlm.VQA_EPOCHS['clip']} epochs")
        clip_run = clip.train_clip("relations", train_vlm.VQA_EPOCHS["clip"], seed, heldout=(),
                                   keep_model=True)
        for arch in args.archs:
            result = train_vlm.train_vqa("relations", arch, seed,
                                         clip_model=clip_run["model"], log=log)
            result.pop("model", None)
            result["seconds"] = {"clip": clip_run["train_seconds"], **result["seconds"]}
            result["train_seconds"] = float(sum(result["seconds"].values()))
            with TABLE.open("a") as table:
                table.write(json.dumps(result) + "\n")
            log(f"seed {seed} {arch}: accuracy {result['accuracy']:.3f}, relational "
                f"{result['accuracy_by_type']['relational']:.3f}, "
                f"{result['train_seconds']:.0f} s")

    summarise()


def summarise() -> None:
    """Relational accuracy per architecture against notebook 06's anchored transformer (the
    anchored qa rows of relations_table.jsonl: a classifier that, like the generators, learns
    from the answers alone), mean ± std over seeds, and against a model that reads only the
    question."""
    from mmcourse import stats

    def relational(path, keep):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r["accuracy_by_type"]["relational"] for r in rows if keep(r)]

    classifier = relational(TABLE.parent / "relations_table.jsonl",
                            lambda r: (r["task"], r["fusion"]) == ("qa", "anchored"))
    log(f"anchored transformer qa classifier: relational {stats.format_mean_std(classifier)}")
    for arch in vlm.ARCHS:
        values = relational(TABLE, lambda r, arch=arch: r["arch"] == arch)
        if values:
            log(f"vqa {arch}: relational {stats.format_mean_std(values)}")
    log(f"question only (the commonest training answer to each question): relational "
        f"{blind_relational():.3f}")


def blind_relational() -> float:
    """The relational accuracy of a model that never looks
    (``train_vlm.question_only_accuracy``)."""
    from mmcourse.data import scenes as data

    return train_vlm.question_only_accuracy(
        data.load_records("qa", "relations", "train"),
        data.load_records("qa", "relations", "test"))["relational"]


if __name__ == "__main__":
    main()
