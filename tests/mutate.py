"""Mutation testing for one module: do the tests notice a plausible bug?

    .venv/bin/python tests/mutate.py scratch
    .venv/bin/python tests/mutate.py data --tests tests/test_data.py tests/test_text.py
    .venv/bin/python tests/mutate.py augment --list          # show the mutants, run nothing
    .venv/bin/python tests/mutate.py text --replace "(-counts[w], w)" "-counts[w]"  # one of yours

The script finds every place in ``mmcourse/<module>.py`` where one small edit gives a
plausible bug (see ``OPERATORS``), samples at most ``--max`` of them with a fixed ``--seed``,
and for each one runs the chosen tests against a copy of the package that holds that single
edit. A mutant is *killed* when the tests fail (or time out), and *survives* when they pass:
a survivor is a bug the tests would let through, or an edit that changes nothing
(an equivalent mutant); read each survivor and decide. The score is killed / run.

Nothing in the checkout is written. The repository's ``mmcourse/`` and ``tests/`` are copied to
a temporary folder (the other top-level entries are linked), and the tests run there, so the
copy's ``mmcourse`` is the one imported. Each run gets a fresh hard-linked copy of the data
folder (``MMCOURSE_DATA``), so a mutant that regenerates the data cannot touch the real one.
The temporary folder is removed at the end, Ctrl-C included. Not collected by pytest (its
name does not start with ``test_``); documented in CONTRIBUTING.md.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Functions whose body is not mutated: benchmarks are measured, never unit-tested.
SKIPPED_FUNCTIONS = ("benchmark",)

_BINARY = {ast.Add: (ast.Sub, "+", "-"), ast.Sub: (ast.Add, "-", "+"),
           ast.Mult: (ast.Div, "*", "/"), ast.Div: (ast.Mult, "/", "*"),
           ast.FloorDiv: (ast.Div, "//", "/"), ast.Mod: (ast.FloorDiv, "%", "//"),
           ast.Pow: (ast.Mult, "**", "*")}
_COMPARE = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="),
            ast.GtE: (">=", ">"), ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="),
            ast.Is: ("is", "is not"), ast.IsNot: ("is not", "is"),
            ast.In: ("in", "not in"), ast.NotIn: ("not in", "in")}
_AUGMENTED = {ast.Add: ("+=", "-="), ast.Sub: ("-=", "+="), ast.Mult: ("*=", "/="),
              ast.Div: ("/=", "*=")}

#: Calls whose arguments are not swapped: the swap can only raise a TypeError.
_NO_SWAP = {"isinstance", "issubclass", "hasattr", "getattr", "setattr"}

#: What the script mutates (one edit per mutant).
OPERATORS = (
    "binary: + <-> -, * <-> /, // -> /, % -> //, ** -> *",
    "augmented assignment: += <-> -=, *= <-> /=",
    "comparison: < <-> <=, > <-> >=, == <-> !=, is <-> is not, in <-> not in",
    "boolean: and <-> or; drop a `not`; drop a unary minus",
    "constant: True <-> False; an integer n -> n + 1 (and n - 1 when n > 0)",
    "call: swap two adjacent positional arguments",
)


@dataclass(frozen=True)
class Mutant:
    line: int
    description: str
    edits: tuple  # ((start_byte, end_byte, new_bytes), ...), applied right to left


def _offsets(source: bytes) -> list[int]:
    starts, position = [0], 0
    for line in source.splitlines(keepends=True):
        position += len(line)
        starts.append(position)
    return starts


class _Finder(ast.NodeVisitor):
    """Collect the mutants of a module's source (byte offsets, as ``ast`` reports them)."""

    def __init__(self, source: bytes):
        self.source, self.starts, self.mutants = source, _offsets(source), []
        self.skip_depth = 0

    def at(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column

    def span(self, node) -> tuple[int, int]:
        return (self.at(node.lineno, node.col_offset),
                self.at(node.end_lineno, node.end_col_offset))

    def text(self, node) -> bytes:
        start, end = self.span(node)
        return self.source[start:end]

    def add(self, node, description: str, *edits) -> None:
        if not self.skip_depth:
            self.mutants.append(Mutant(node.lineno, description, tuple(edits)))

    def replace_between(self, left, right, old: str, new: str, node, description: str):
        """Replace the operator ``old`` in the source between two operands."""
        start, end = self.span(left)[1], self.span(right)[0]
        gap = self.source[start:end]
        index = gap.find(old.encode())
        if index < 0:  # pragma: no cover - an operator hidden in a comment or odd layout
            return
        position = start + index
        self.add(node, description, (position, position + len(old), new.encode()))

    # --- skipped regions ---------------------------------------------------------------

    def visit_FunctionDef(self, node):
        skipped = node.name in SKIPPED_FUNCTIONS
        self.skip_depth += skipped
        for decorator in node.decorator_list:
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for statement in node.body:  # annotations are not code: not visited
            self.visit(statement)
        self.skip_depth -= skipped

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_Raise(self, node):  # error messages: skip, but the raise itself stays
        return

    def visit_JoinedStr(self, node):  # f-strings: text, not logic
        return

    def visit_Expr(self, node):  # docstrings and bare expressions
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.visit(node.value)

    # --- mutation sites ---------------------------------------------------------------------

    def visit_BinOp(self, node):
        entry = _BINARY.get(type(node.op))
        if entry:
            _, old, new = entry
            self.replace_between(node.left, node.right, old, new, node, f"{old} -> {new}")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        entry = _AUGMENTED.get(type(node.op))
        if entry:
            old, new = entry
            self.replace_between(node.target, node.value, old, new, node, f"{old} -> {new}")
        self.generic_visit(node)

    def visit_Compare(self, node):
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            entry = _COMPARE.get(type(op))
            if entry:
                old, new = entry
                self.replace_between(operands[index], operands[index + 1], old, new, node,
                                     f"{old} -> {new}")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in itertools.pairwise(node.values):
            self.replace_between(left, right, old, new, node, f"{old} -> {new}")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.Not, ast.USub)):
            start, end = self.span(node)
            operand = b"(" + self.text(node.operand) + b")"
            word = "not" if isinstance(node.op, ast.Not) else "unary -"
            self.add(node, f"drop {word}", (start, end, operand))
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return  # -1: the constant's own mutants would duplicate the ones above
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        start, end = self.span(node)
        if isinstance(value, bool):
            self.add(node, f"{value} -> {not value}", (start, end, str(not value).encode()))
        elif isinstance(value, int):
            self.add(node, f"{value} -> {value + 1}", (start, end, str(value + 1).encode()))
            if value > 0:
                self.add(node, f"{value} -> {value - 1}", (start, end, str(value - 1).encode()))

    def visit_Call(self, node):
        arguments = [a for a in node.args if not isinstance(a, ast.Starred)]
        name = ast.unparse(node.func)
        if len(arguments) == len(node.args) and name not in _NO_SWAP:
            for first, second in itertools.pairwise(arguments):
                a, b = self.span(first), self.span(second)
                if self.text(first) == self.text(second):
                    continue
                self.add(node, f"swap arguments {ast.unparse(first)!s:.20} and "
                               f"{ast.unparse(second)!s:.20} of {name:.30}",
                         (b[0], b[1], self.text(first)), (a[0], a[1], self.text(second)))
        self.generic_visit(node)


def find_mutants(source: bytes) -> list[Mutant]:
    finder = _Finder(source)
    finder.visit(ast.parse(source))
    return finder.mutants


def apply(source: bytes, mutant: Mutant) -> bytes:
    for start, end, new in sorted(mutant.edits, reverse=True):
        source = source[:start] + new + source[end:]
    return source


# --- running the tests ----------------------------------------------------------------------


def _workspace(repo: Path) -> Path:
    """A temporary copy of the checkout's package and tests; the rest linked."""
    workspace = Path(tempfile.mkdtemp(prefix="mmcourse-mutate-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for entry in repo.iterdir():
        if entry.name in (".git", ".venv", "data", "runs"):
            continue
        if entry.name in ("mmcourse", "tests"):
            shutil.copytree(entry, workspace / entry.name, ignore=ignore)
        else:
            (workspace / entry.name).symlink_to(entry)
    return workspace


def _fresh_data(data: Path, workspace: Path) -> Path:
    target = workspace / "data"
    if target.exists():
        shutil.rmtree(target)
    if data.is_dir():
        try:
            shutil.copytree(data, target, copy_function=os.link)
        except OSError:  # another file system: a real copy
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(data, target)
    return target


def run_tests(workspace: Path, data: Path, tests: list[str], timeout: float, python: str,
              first_failure_only: bool = True) -> tuple[str, float, list[str]]:
    """Run the tests in the workspace: ("passed" | "failed" | "timeout", seconds, the
    "FAILED test" lines)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "MMCOURSE_DATA": str(_fresh_data(data, workspace)),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    # the copy first, also for child processes (`python -m mmcourse.classroom.grading`), which would
    # otherwise import whatever checkout the venv's editable install points to
    env["PYTHONPATH"] = str(workspace)
    command = [python, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
               *(["-x"] if first_failure_only else []), *tests]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout", time.monotonic() - start, []
    except BaseException:  # Ctrl-C: stop the tests too
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    outcome = "passed" if process.returncode == 0 else "failed"
    return outcome, time.monotonic() - start, failed


def hand_mutant(repo: Path, path: Path, data: Path, tests: list[str], old: str, new: str,
                timeout: float) -> int:
    """Run the tests once with ``old`` replaced by ``new`` (it must occur exactly once)."""
    source = path.read_text(encoding="utf-8")
    if source.count(old) != 1:
        raise SystemExit(f"mutate.py: --replace: {old!r} occurs {source.count(old)} times in "
                         f"{path.name}; give a piece of code that occurs exactly once")
    mutated = source.replace(old, new)
    try:
        compile(mutated, str(path), "exec")
    except SyntaxError as error:
        raise SystemExit(f"mutate.py: --replace: the result is not valid Python: {error}") from None
    workspace = _workspace(repo)
    try:
        (workspace / path.relative_to(repo)).write_text(mutated, encoding="utf-8")
        outcome, seconds, failed = run_tests(workspace, data, tests, timeout, sys.executable,
                                             first_failure_only=False)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    verdict = "survived" if outcome == "passed" else f"killed ({outcome})"
    print(f"{path.name}: {old!r} -> {new!r}: {verdict} in {seconds:.0f} s")
    for line in failed:
        print(f"  {line}")
    return 0


def _module_path(repo: Path, module: str) -> Path:
    """``data.augment``, ``mmcourse.data.augment`` or ``mmcourse/data/augment.py`` -> that file;
    a family's name (``clip``) -> its ``__init__.py``."""
    name = module.removeprefix("mmcourse.").removeprefix("mmcourse/").removesuffix(".py")
    base = repo / "mmcourse" / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise SystemExit(f"mutate.py: module: no file {base}.py; give a module of mmcourse, "
                     f"such as data.augment or mmcourse/data/scenes.py")


def _default_tests(repo: Path, name: str) -> list[str]:
    tests = sorted(p.relative_to(repo).as_posix() for p in (repo / "tests").glob(f"test_{name}*.py"))
    if not tests:
        raise SystemExit(f"mutate.py: no tests/test_{name}*.py; choose the tests with --tests")
    return tests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Mutation operators: " + "; ".join(OPERATORS))
    parser.add_argument("module", help="a module of mmcourse, e.g. data.augment or mmcourse/data/scenes.py")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="pytest arguments, relative to the repo (default: tests/test_<module>*.py)")
    parser.add_argument("--max", type=int, default=40, help="mutants to sample (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per test run (default: 4 x the clean run + 30)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout to test (default: this one), e.g. a git worktree of an "
                             "older commit for a before/after comparison")
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder to copy for each run (default: REPO/data)")
    parser.add_argument("--list", action="store_true", help="list the sampled mutants and stop")
    parser.add_argument("--replace", nargs=2, metavar=("OLD", "NEW"), default=None,
                        help="run one hand-written mutant instead: replace the code OLD "
                             "(exactly once in the module) by NEW and list the failing tests")
    args = parser.parse_args(argv)
    if args.max < 1:
        parser.error(f"--max must be >= 1, got {args.max}")
    repo = args.repo.resolve()
    path = _module_path(repo, args.module)
    tests = args.tests or _default_tests(repo, path.parent.name if path.stem == "__init__"
                                         else path.stem)
    data = (args.data or repo / "data").resolve()
    if args.replace:
        return hand_mutant(repo, path, data, tests, *args.replace, timeout=args.timeout or 600)
    source = path.read_bytes()
    mutants = find_mutants(source)
    sample = sorted(random.Random(args.seed).sample(mutants, min(args.max, len(mutants))),
                    key=lambda m: (m.line, m.description))
    print(f"{path.relative_to(repo)}: {len(mutants)} mutants, running {len(sample)} "
          f"(seed {args.seed}) against: {' '.join(tests)}", flush=True)
    if args.list:
        for mutant in sample:
            print(f"  line {mutant.line}: {mutant.description}")
        return 0
    workspace = _workspace(repo)
    target = workspace / path.relative_to(repo)
    try:
        outcome, seconds, _ = run_tests(workspace, data, tests, args.timeout or 600,
                                        sys.executable)
        if outcome != "passed":
            print(f"the tests do not pass on the unmutated code ({outcome}): fix that first",
                  file=sys.stderr)
            return 2
        timeout = args.timeout or 4 * seconds + 30
        print(f"clean run: passed in {seconds:.0f} s; timeout per mutant {timeout:.0f} s",
              flush=True)
        survivors, killed = [], 0
        for number, mutant in enumerate(sample, start=1):
            mutated = apply(source, mutant)
            try:
                compile(mutated, str(path), "exec")
            except SyntaxError:  # pragma: no cover - an edit the grammar refuses
                print(f"[{number}/{len(sample)}] line {mutant.line}: {mutant.description}: "
                      f"not valid Python, skipped")
                continue
            target.write_bytes(mutated)
            outcome, seconds, _ = run_tests(workspace, data, tests, timeout, sys.executable)
            target.write_bytes(source)
            verdict = "survived" if outcome == "passed" else f"killed ({outcome})"
            killed += outcome != "passed"
            if outcome == "passed":
                survivors.append(mutant)
            print(f"[{number}/{len(sample)}] line {mutant.line}: {mutant.description}: "
                  f"{verdict}", flush=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    ran = killed + len(survivors)
    print(f"\n{path.relative_to(repo)}: killed {killed} of {ran} mutants, "
          f"score {killed / max(ran, 1):.0%}")
    print_survivors(source, survivors)
    return 0


def print_survivors(source: bytes, survivors) -> None:
    """One line per surviving mutant: where, what, and the source line it edited."""
    lines = source.decode("utf-8").splitlines()
    for mutant in survivors:
        print(f"  survived: line {mutant.line}: {mutant.description}:  "
              f"{lines[mutant.line - 1].strip():.70}")


if __name__ == "__main__":
    sys.exit(main())
