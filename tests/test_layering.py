"""The package is a house of floors: each mmcourse module imports only modules below it, in
the order that CONTRIBUTING.md states ("Package layering"), there is no import cycle, and the
rules written there hold. Imports inside functions count: they are delayed, not absent."""

import ast
import re

from mmcourse import REPO_ROOT

PACKAGE = REPO_ROOT / "mmcourse"
NOTEBOOK_MODULE = re.compile(r"exercises\.notebook_\d\d")
MODEL_FLOOR = ("blocks", "matcher", "clip", "vlm", "hub")
DATASET_READERS = {"paths", "data.scenes", "data.store", "data.folders", "data.split_files",
                   "data.audio", "data.video", "data.pipeline"}


def _layering_block():
    text = (REPO_ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = re.search(r"^## Package layering\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "CONTRIBUTING.md needs a '## Package layering' section"
    block = re.search(r"^```text\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the Package layering section lists the modules in a ```text block"
    return [line.split()[0] for line in block.group(1).splitlines() if line.strip()]


def _documented_order():
    """(modules bottom first, {module: floor}) from CONTRIBUTING.md; ``[floor]`` lines open
    a floor."""
    order, floor_of, floor = [], {}, None
    for word in _layering_block():
        if word.startswith("["):
            floor = word.strip("[]")
            continue
        order.append(word)
        floor_of[word] = floor
    return order, floor_of


ORDER, FLOOR = _documented_order()


def _name(path):
    """mmcourse/data/text.py -> "data.text"; mmcourse/clip/__init__.py -> "clip"."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
BARE_PACKAGES = {name for name, path in MODULES.items()
                 if path.name == "__init__.py" and name != "__init__" and name not in ORDER}


def _rank(module):
    """Position in ORDER. A notebook's exercises share the rank of ``exercises.notebook_NN``;
    a subpackage __init__ that is not listed (a docstring only) sits just below the first
    module of its folder."""
    if NOTEBOOK_MODULE.fullmatch(module):
        module = "exercises.notebook_NN"
    if module in BARE_PACKAGES:
        first = min(ORDER.index(m) for m in ORDER if m.startswith(module + "."))
        return first - 0.5
    return ORDER.index(module) if module in ORDER else None


def _imports_in(source, module):
    """{imported mmcourse module: first line} for every import statement of ``source``, at
    any depth (functions, methods, if blocks). ``from mmcourse.data import text`` imports
    the module ``data.text`` and the package ``data`` (its ``__init__`` runs first);
    ``from mmcourse.clip import ClipModel`` imports ``clip``."""
    found = {}

    def add(name, line):
        if name != module:
            found.setdefault(name, line)

    def resolve(parts):
        """The longest prefix of ``parts`` that is a module of the package."""
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in MODULES:
                return ".".join(parts[:end])
        return "__init__"

    package = module.split(".")[:-1] if not MODULES.get(module, PACKAGE).name == "__init__.py" \
        else module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mmcourse":
                    add(resolve(parts[1:]), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = package[:len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "mmcourse":
                base = node.module.split(".")[1:]
            else:
                continue
            if base:  # the package or module named after "from" runs first: it is imported too
                add(resolve(base), node.lineno)
            for alias in node.names:  # a submodule, or a name defined in the module
                add(resolve([*base, alias.name]), node.lineno)
    return found


GRAPH = {module: _imports_in(path.read_text(encoding="utf-8"), module)
         for module, path in MODULES.items()}


def test_the_documented_order_names_real_modules_once():
    assert len(ORDER) == len(set(ORDER)), ORDER
    for name in ORDER:
        assert name == "exercises.notebook_NN" or name in MODULES, \
            f"CONTRIBUTING.md's layering lists {name!r}, which is not a module of mmcourse"


def test_every_module_has_a_place_in_the_order():
    missing = [m for m in GRAPH if _rank(m) is None]
    assert not missing, (f"add {missing} to the '## Package layering' list in CONTRIBUTING.md, "
                         f"above every module they import")


def test_each_folder_lives_on_one_floor():
    floors = {}
    for module in ORDER:
        if "." in module or module in BARE_PACKAGES or MODULES.get(module, PACKAGE).name == \
                "__init__.py":
            folder = module.split(".")[0]
            floors.setdefault(folder, set()).add(FLOOR[module])
    split = {folder: sorted(f) for folder, f in floors.items() if len(f) > 1}
    assert not split, f"a folder spans floors: {split}"


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
                upward.append(f"{MODULES[module].relative_to(REPO_ROOT)}:{line} imports {target}, "
                              f"which is not below {module} in CONTRIBUTING.md's Package layering")
    assert not upward, "\n".join(upward)


def test_model_modules_never_read_datasets_from_disk():
    readers = [f"{module} imports {target}" for module, imports in GRAPH.items()
               if module.split(".")[0] in MODEL_FLOOR
               for target in imports if target in DATASET_READERS]
    assert not readers, "a model module reads data; move that code to train/ or apps/:\n" + \
        "\n".join(readers)


def _modules_mentioning(pattern):
    return sorted(module for module, path in MODULES.items()
                  if re.search(pattern, path.read_text(encoding="utf-8")))


def test_only_exercises_knows_the_record():
    outside = [m for m in _modules_mentioning(r"MMCOURSE_RECORD|RECORD_VARIABLE")
               if m.split(".")[0] != "exercises"]
    assert not outside, f"{outside} read or write the exercise record: use mmcourse.exercises.record"


def test_only_the_command_line_parses_arguments():
    outside = [m for m in _modules_mentioning(r"^\s*(import argparse|from argparse import)")
               if m.split(".")[0] not in {"cli", "__main__"}]
    assert not outside, f"{outside} parse command-line arguments: move that code to mmcourse/cli/"


def test_the_parser_finds_every_import_form_at_any_depth():
    source = ("import numpy\nimport mmcourse.data.scenes\nfrom mmcourse import clip, DATA_DIR\n"
              "def f():\n    from mmcourse.matcher.model import FUSIONS\n"
              "    if True:\n        from mmcourse.data import text\n        import mmcourse\n"
              "class C:\n    def g(self):\n        from mmcourse.scratch import conv2d\n")
    assert _imports_in(source, "x") == {"data.scenes": 2, "clip": 3, "__init__": 3,
                                        "matcher.model": 5, "data": 7, "data.text": 7,
                                        "scratch": 11}
    assert _imports_in("from . import presets\nfrom .presets import x\n", "hub.clip") == \
        {"hub": 1, "hub.presets": 1}
    assert "data.text" in GRAPH["data.scenes"] and "data.scenes" not in GRAPH["data.text"]
    # a family's own module reaching a sibling through the family's face imports the face
    assert _imports_in("from mmcourse.clip import layers\n", "clip.model") == \
        {"clip": 1, "clip.layers": 1}
