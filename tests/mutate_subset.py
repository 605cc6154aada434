"""Run part of ``tests/mutate.py``'s seed-0 sample: named survivors, or the mutants of a
larger sample that a smaller one left out (docs/results/mutation_audit.md).

    .venv/bin/python tests/mutate_subset.py owndata --max 40 --skip-sample 20 --tests T ...
    .venv/bin/python tests/mutate_subset.py relations --only "98:0 -> 1" "138:16 -> 17" \\
        --tests tests/test_relations.py::test_default_layers_have_their_parameter_counts_by_hand

A mutant is named ``LINE:DESCRIPTION`` as ``mutate.py`` prints it. ``--tests`` comes last:
everything after it goes to pytest. Like ``mutate.py`` it never writes the checkout and
runs no clean run first: run the tests once on the unmutated code yourself.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutate  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="a module of mmcourse, e.g. owndata")
    parser.add_argument("--max", type=int, default=40, help="the sample's size (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--skip-sample", type=int, default=0,
                        help="leave out the mutants of the sample of this size")
    parser.add_argument("--only", nargs="*", default=None, help="LINE:DESCRIPTION of each "
                        "mutant to run (default: all of the sample)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    parser.add_argument("--tests", nargs=argparse.REMAINDER, required=True,
                        help="pytest arguments, relative to the repo")
    args = parser.parse_args(argv)
    repo = mutate.REPO
    path = mutate._module_path(repo, args.module)
    source = path.read_bytes()
    mutants = mutate.find_mutants(source)
    sample = random.Random(args.seed).sample(mutants, min(args.max, len(mutants)))
    if args.skip_sample:
        smaller = set(random.Random(args.seed).sample(mutants, args.skip_sample))
        if not smaller <= set(sample):
            raise SystemExit("mutate_subset.py: --skip-sample: that sample is not inside the "
                             "larger one; compare them with mutate.py --list")
        sample = [m for m in sample if m not in smaller]
    sample.sort(key=lambda m: (m.line, m.description))
    if args.only is not None:
        sample = [m for m in sample if f"{m.line}:{m.description}" in args.only]
    print(f"{path.name}: running {len(sample)} mutants against {' '.join(args.tests)}",
          flush=True)
    workspace = mutate._workspace(repo)
    target = workspace / path.relative_to(repo)
    survivors, killed = [], 0
    try:
        for number, mutant in enumerate(sample, start=1):
            target.write_bytes(mutate.apply(source, mutant))
            outcome, seconds, failed = mutate.run_tests(workspace, repo / "data", args.tests,
                                                        args.timeout, sys.executable)
            target.write_bytes(source)
            killed += outcome != "passed"
            if outcome == "passed":
                survivors.append(mutant)
            verdict = "survived" if outcome == "passed" else f"killed ({outcome})"
            print(f"[{number}/{len(sample)}] line {mutant.line}: {mutant.description}: "
                  f"{verdict} in {seconds:.0f} s {' '.join(failed[:1])}", flush=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(f"killed {killed} of {len(sample)}")
    mutate.print_survivors(source, survivors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
