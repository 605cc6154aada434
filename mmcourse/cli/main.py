"""``main(argv)``: parse ``python -m mmcourse <command>`` and run the command (notebook 00).

Commands import their module only when they run, so ``doctor`` works even when
TensorFlow is missing or broken. With ``--json``, stdout carries JSON only and
logs go to stderr. A bad argument ends with exit status 2 and a message that names
the flag and what it expects; a file-system problem (read-only folder, disk full)
with exit status 1 and what to do; never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmcourse.cli import (
    commands_classroom,
    commands_data,
    commands_deploy,
    commands_hub,
    commands_train,
)
from mmcourse.cli.parser import build_parser


def doctor(parser: argparse.ArgumentParser, args) -> int:
    """``doctor [--json]``: the environment's report (``mmcourse.cli.doctor``)."""
    from mmcourse.cli import doctor as doctoring

    return doctoring.main(as_json=args.json)


def bench(parser: argparse.ArgumentParser, args) -> int:
    """``bench [NAME ...] [--json]``: run the named benchmarks (all when none are named) and
    print each report, or one JSON object (``mmcourse.bench``); 2 for an unknown name."""
    from mmcourse import bench as benchmarks

    names = args.names or list(benchmarks.BENCHMARKS)
    for name in names:  # fail on a typo before spending minutes on the others
        if name not in benchmarks.BENCHMARKS:
            print(f"error: unknown benchmark {name!r}; choose from "
                  f"{sorted(benchmarks.BENCHMARKS)}", file=sys.stderr)
            return 2
    results = []
    for name in names:
        print(f"running benchmark {name} ...", file=sys.stderr)
        result = benchmarks.load(name)()
        results.append(result)
        if not args.json:
            print(benchmarks.format_result(result), flush=True)
    if args.json:
        print(json.dumps({r.name: r.to_dict() for r in results}, indent=2))
    return 0


#: command -> the function that checks its arguments and runs it: (parser, args) -> status
COMMANDS = {
    "doctor": doctor,
    "data": commands_data.data,
    "check-data": lambda parser, args: commands_data.check_data(args),
    "train": commands_train.train,
    "predict": commands_deploy.predict,
    "export": commands_deploy.export,
    "serve": commands_deploy.serve,
    "exercises": commands_classroom.exercises,
    "grade": commands_classroom.grade,
    "plan": commands_hub.plan,  # issue 22 (notebook 12)
    "finetune": commands_hub.finetune,
    "caption": commands_hub.caption,
    "zero-shot": commands_hub.zero_shot,
    "bench": bench,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (argparse exits 2 itself on a bad flag)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: list them, one line each
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    return COMMANDS[args.command](parser, args)
