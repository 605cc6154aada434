"""The package is layered: each mmcourse module imports only modules below it, in the order
that CONTRIBUTING.md states ("Package layering"), and there is no import cycle. Imports
inside functions count: they are delayed, not absent."""

import ast
import re

from mmcourse import REPO_ROOT

PACKAGE = REPO_ROOT / "mmcourse"
NOTEBOOK_MODULE = re.compile(r"exercises_\d\d")


def _documented_order():
    """The module list of CONTRIBUTING.md's "Package layering" section, bottom first."""
    text = (REPO_ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = re.search(r"^## Package layering\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "CONTRIBUTING.md needs a '## Package layering' section"
    block = re.search(r"^```text\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the Package layering section lists the modules in a ```text block"
    return [line.split()[0] for line in block.group(1).splitlines() if line.strip()]


ORDER = _documented_order()


def _rank(module):
    """Position in ORDER; __init__ sits just above paths and seeding (the only modules it
    imports); every exercises_NN shares the rank of the exercises_NN entry."""
    if module == "__init__":
        return max(ORDER.index("paths"), ORDER.index("seeding")) + 0.5
    if NOTEBOOK_MODULE.fullmatch(module):
        module = "exercises_NN"
    return ORDER.index(module) if module in ORDER else None


def _modules():
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def _imports(module):
    return _imports_in((PACKAGE / f"{module}.py").read_text(encoding="utf-8"), module)


def _imports_in(source, module):
    """{imported mmcourse module: first line} for every import statement of ``source``, at
    any depth (functions, methods, if blocks)."""
    found = {}

    def add(name, line):
        if name != module:
            found.setdefault(name, line)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mmcourse":
                    add(parts[1] if len(parts) > 1 else "__init__", node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = ["mmcourse", *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "mmcourse":
                base = node.module.split(".")
            else:
                continue
            if len(base) > 1:
                add(base[1], node.lineno)
                continue
            for alias in node.names:  # from mmcourse import x: a module, or a name of __init__
                is_module = (PACKAGE / f"{alias.name}.py").is_file()
                add(alias.name if is_module else "__init__", node.lineno)
    return found


GRAPH = {module: _imports(module) for module in _modules()}


def test_the_documented_order_names_real_modules_once():
    assert len(ORDER) == len(set(ORDER)), ORDER
    for name in ORDER:
        assert name == "exercises_NN" or (PACKAGE / f"{name}.py").is_file(), \
            f"CONTRIBUTING.md's layering lists {name!r}, which is not a module of mmcourse"


def test_every_module_has_a_place_in_the_order():
    missing = [m for m in GRAPH if _rank(m) is None]
    assert not missing, (f"add {missing} to the '## Package layering' list in CONTRIBUTING.md, "
                         f"above every module they import")


def test_init_imports_only_paths_and_seeding():
    assert set(GRAPH["__init__"]) <= {"paths", "seeding"}, GRAPH["__init__"]


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(GRAPH.get(module, {})):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state and target in GRAPH:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in GRAPH:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_each_module_imports_only_modules_below_it():
    upward = []
    for module, imports in GRAPH.items():
        for target, line in sorted(imports.items()):
            if _rank(module) is None or _rank(target) is None:
                continue  # reported by test_every_module_has_a_place_in_the_order
            if _rank(target) >= _rank(module):
                upward.append(f"mmcourse/{module}.py:{line} imports {target}, which is not "
                              f"below {module} in CONTRIBUTING.md's Package layering")
    assert not upward, "\n".join(upward)


def test_the_parser_finds_every_import_form_at_any_depth():
    source = ("import numpy\nimport mmcourse.data\nfrom mmcourse import text, DATA_DIR\n"
              "def f():\n    from mmcourse.models import FUSIONS\n"
              "    if True:\n        from . import plots\n        import mmcourse\n"
              "class C:\n    def g(self):\n        from .scratch import dense\n")
    assert _imports_in(source, "x") == {"data": 2, "text": 3, "__init__": 3, "models": 5,
                                        "plots": 7, "scratch": 11}
    assert "text" in GRAPH["data"] and "data" not in GRAPH["text"]
