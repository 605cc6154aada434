"""The classroom commands: ``exercises`` (teacher copies, the generated docs) and ``grade``
(docs/TEACHING.md, notebook 00).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmcourse import i18n
from mmcourse.cli.arguments import file_system_error
from mmcourse.paths import REPO_ROOT


def exercises(parser: argparse.ArgumentParser, args) -> int:
    """``exercises --list [--markdown] | --solutions OUT_DIR | --sync`` (docs/TEACHING.md)."""
    if args.markdown and not args.list:
        parser.error("argument --markdown: only with --list")
    if not (args.list or args.solutions or args.sync):
        parser.error("argument --list/--solutions/--sync: give at least one of them")
    if args.solutions is not None and Path(args.solutions).exists() and \
            not Path(args.solutions).is_dir():
        parser.error(f"argument --solutions: {args.solutions} is a file; give a folder")
    try:
        return exercise_files(args)
    except ValueError as error:  # a starter cell that maps to no exercise, missing markers
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(file_system_error(error, "--solutions" if args.solutions else "",
                                args.solutions or error.filename), file=sys.stderr)
        return 1


def exercise_files(args) -> int:
    """``exercises (--list [--markdown] | --solutions OUT_DIR | --sync)``
    (``mmcourse.classroom.teaching``)."""
    from mmcourse.classroom import teaching

    if args.solutions is not None:
        out = Path(args.solutions)
        written = teaching.write_teacher_copies(out)
        print(f"wrote {len(written)} teacher copies to {out}/ (solutions between "
              f"'{teaching.BEGIN}' and '{teaching.END}')")
    if args.list:
        print(teaching.exercise_list(markdown=args.markdown), end="")
    if args.sync:
        changed = teaching.sync_docs()
        shown = ", ".join(p.relative_to(REPO_ROOT).as_posix() for p in changed) or "nothing"
        print(f"updated {shown} (the generated schedule and exercise list)")
    return 0


def grade(parser: argparse.ArgumentParser, args) -> int:
    """``grade SUBMISSIONS [--out FILE] [--jobs N] [--timeout S]`` (mmcourse.classroom.grading)."""
    submissions, out = Path(args.submissions), Path(args.out)
    if not submissions.is_dir():
        parser.error(f"argument SUBMISSIONS: {submissions} is not a folder; give the folder "
                     f"of student folders or of notebooks")
    from mmcourse.classroom import grading

    if not grading.find_submissions(submissions):
        parser.error(f"argument SUBMISSIONS: no .ipynb notebooks in {submissions} or its "
                     f"subfolders")
    if out.is_dir() or out.suffix.lower() != ".csv":
        parser.error(f"argument --out: {out} should be a .csv file name")
    if out.resolve().is_relative_to(submissions.resolve()):
        parser.error(f"argument --out: {out} is inside SUBMISSIONS; write the grades elsewhere "
                     f"(the submissions are never written)")
    try:
        with i18n.language(args.lang, from_locale=True):
            grading.grade(submissions, out, jobs=args.jobs, timeout=args.timeout)
    except OSError as error:
        print(file_system_error(error, "--out", out), file=sys.stderr)
        return 1
    return 0
