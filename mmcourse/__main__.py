"""Command line: ``python -m mmcourse <command>`` (introduced in notebook 00).

Commands import their module only when they run, so ``doctor`` works even when
TensorFlow is missing or broken. With ``--json``, stdout carries JSON only and
logs go to stderr.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmcourse", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    doctor = commands.add_parser("doctor", help="check the environment; exit 1 if broken")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    data = commands.add_parser("data", help="build or verify the course datasets")
    data.add_argument("--root", default=None, help="data folder (default: data/ in the repo)")
    data.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    data.add_argument("--verify", action="store_true",
                      help="re-hash the data against its manifest; exit 1 on any difference")

    train = commands.add_parser("train", help="train and evaluate one model")
    train.add_argument("--task", default="match", help="task (default match)")
    train.add_argument("--fusion", default="concat", help="fusion method (default concat)")
    train.add_argument("--level", default="attributes", choices=["attributes", "relations"])
    train.add_argument("--epochs", type=int, default=None, help="epochs (default per task)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--root", default=None, help="data folder (default: data/ in the repo)")
    train.add_argument("--json", action="store_true", help="print the result as one JSON object")
    train.add_argument("--strategy", default="default",
                       choices=["default", "mirrored", "multiworker"],
                       help="tf.distribute strategy: mirrored = 2 logical CPUs or all GPUs, "
                            "multiworker = one process per machine, cluster in TF_CONFIG")
    train.add_argument("--run-dir", default=None,
                       help="folder for best.keras, model.keras and the resume backup")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from --run-dir's backup")
    train.add_argument("--patience", type=int, default=None,
                       help="early stopping patience in epochs (restores the best weights)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="global batch size, split over the replicas (default 64)")
    train.add_argument("--train-size", type=int, default=None,
                       help="use only the first N training examples (quick runs)")
    train.add_argument("--test-size", type=int, default=None,
                       help="use only the first N validation and test examples")

    bench = commands.add_parser("bench", help="run benchmarks and print measured ratios")
    bench.add_argument("names", nargs="*", metavar="NAME", help="benchmarks (default: all)")
    bench.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from mmcourse import doctor

        return doctor.main(as_json=args.json)
    if args.command == "data":
        from mmcourse import data

        return data.main(root=args.root, seed=args.seed, verify=args.verify)
    if args.command == "train":
        from mmcourse import training

        return training.main(args)
    if args.command == "bench":
        from mmcourse import bench

        return bench.main(args.names, as_json=args.json)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
