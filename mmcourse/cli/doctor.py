"""Environment check: ``python -m mmcourse doctor [--json]`` (introduced in notebook 00).

The doctor reports the Python version, every pinned requirement against what is
installed, TensorFlow/Keras and the devices TensorFlow sees, the OpenCV build,
JupyterLab and the kernel it would start, free disk space and the course data.
It ends with a verdict and exits 1 when something essential is missing or broken,
printing the exact command that fixes it.

Every import that can fail or hang (TensorFlow, Keras, OpenCV, ...) runs in a
child process with a timeout (``cli.probes``), so a broken, crashing or hanging library
gives a verdict, never a traceback; the pins are read by ``cli.requirements``. This module
and those two import only the standard library (and ``mmcourse.paths``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

from mmcourse.cli.probes import PROBES, run_probes
from mmcourse.cli.requirements import (
    ALTERNATIVES,
    ESSENTIAL,
    REQUIREMENTS,
    Requirement,
    check_packages,
    installed_version,
    parse_requirements,
)
from mmcourse.paths import DATA_DIR, REPO_ROOT

PYTHON_RANGE = ((3, 10), (3, 12))  # inclusive
MIN_FREE_GB = 2.0


# --- the report ---------------------------------------------------------------


def shown_python(executable: str = sys.executable) -> str:
    """The interpreter as the user should type it: relative to the repo if inside it."""
    path = Path(executable)
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _distribution_file(dist_name: str, module: str) -> Path | None:
    for candidate in (dist_name, *ALTERNATIVES.get(dist_name, ())):
        try:
            dist = importlib.metadata.distribution(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
        return Path(dist.locate_file(f"{module}/__init__.py"))
    return None


def _shadowing(dist_name: str, module: str) -> str | None:
    """The path of a file or folder that hides the installed package, if any.

    ``find_spec`` of a top-level name locates the module without running it.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec else None
    if not origin or origin in ("built-in", "frozen"):
        return None
    installed = _distribution_file(dist_name, module)
    try:
        if installed is None or Path(origin).resolve() == installed.resolve():
            return None
    except OSError:
        return None
    origin_path = Path(origin)
    return str(origin_path.parent if origin_path.name == "__init__.py" else origin_path)


def _import_failure(probe: dict, key: str) -> str | None:
    if "failure" in probe:
        return probe["failure"]
    return probe.get(f"{key}_error")


def diagnose(report: dict, python: str | None = None) -> list[dict]:
    """The problems in a report: ``severity`` (error/warning), ``what`` and ``fix``.

    Pure: works on the report's data only, so it is unit-tested with fake reports.
    """
    py = python or report["python"]["shown"]
    reinstall_all = f"{py} -m pip install -r requirements.txt"
    problems = []

    def add(severity, what, fix):
        problems.append({"severity": severity, "what": what, "fix": fix})

    version = report["python"]["version"]
    if report["python"]["status"] != "ok":
        add("error", f"Python {version} is not supported; the course needs 3.10-3.12",
            "install Python 3.11, then: make clean && PYTHON=python3.11 make setup")

    if report.get("requirements_error"):
        add("warning", f"cannot read requirements.txt ({report['requirements_error']}); "
                       f"versions were not compared", "git checkout -- requirements.txt")

    packages = {row["name"]: row for row in report["packages"]}
    for row in report["packages"]:
        name, pinned = row["name"], row["pinned"]
        if row["status"] == "missing":
            severity = "error" if row["essential"] else "warning"
            add(severity, f"{name} is not installed (pinned {pinned})",
                f"{py} -m pip install {name}=={pinned}" if severity == "warning"
                else reinstall_all if pinned else f"{py} -m pip install {name}")
        elif row["status"] == "mismatch":
            add("warning", f"{name} {row['installed']} is installed; the course pins {pinned}",
                f"{py} -m pip install {name}=={pinned}")

    imports = report["imports"]
    for dist_name, module in ESSENTIAL.items():
        row = packages.get(dist_name)
        if row is not None and row["status"] == "missing":
            continue  # already an error with its fix
        entry = imports.get(module, {})
        if entry.get("status") in ("ok", "not checked", None):
            continue
        pin = _pin(packages, dist_name)
        shadow = entry.get("shadowed_by")
        if shadow:
            fix = (f"rename or remove {shadow} (it hides the installed {module}), "
                   f"or take its folder out of PYTHONPATH")
        elif module in ("tensorflow", "keras") and "numpy" in entry.get("error", "").lower():
            fix = f"{py} -m pip install --force-reinstall {pin} {_pin(packages, 'numpy')}"
        else:
            fix = f"{py} -m pip install --force-reinstall {pin}"
        add("error", f"{module} fails to import: {entry.get('error', 'unknown error')}", fix)

    tf_entry = imports.get("tensorflow", {})
    tf_pin = _pin(packages, "tensorflow").replace("tensorflow", "tensorflow[and-cuda]")
    if tf_entry.get("status") == "ok" and not tf_entry.get("gpus") and report.get("nvidia_smi"):
        add("warning", "this machine has an NVIDIA driver (nvidia-smi) but TensorFlow sees no GPU",
            f"{py} -m pip install '{tf_pin}' (Linux; docs/SETUP.md)")

    keras_backend = imports.get("keras", {}).get("backend")
    if keras_backend not in (None, "tensorflow"):
        add("error", f"Keras uses the {keras_backend!r} backend; the course needs 'tensorflow'",
            "unset KERAS_BACKEND (or export KERAS_BACKEND=tensorflow) and check ~/.keras/keras.json")

    kernel = report["jupyter"].get("kernel")
    if report["jupyter"].get("kernel_error"):
        add("warning", f"cannot read the python3 kernel: {report['jupyter']['kernel_error']}",
            f"{py} -m pip install --force-reinstall {_pin(packages, 'ipykernel')}")
    elif kernel and not kernel.get("same_python", True):
        add("warning", f"JupyterLab's python3 kernel runs {kernel['python']}, "
                       f"not {report['python']['executable']}",
            f"{py} -m ipykernel install --user --name mmcourse --display-name "
            f"'Python (mmcourse)', then pick that kernel in JupyterLab")

    disk = report["disk"]
    if disk.get("free_gb") is not None and disk["free_gb"] < MIN_FREE_GB:
        add("warning", f"only {disk['free_gb']:.1f} GB free on the disk of the repository",
            "free some disk space (make clean removes .venv and generated data)")

    data = report["data"]
    if data["status"] == "not generated":
        add("warning", "the course data is not generated", "make setup")
    elif data["status"] != "ok":
        add("warning", f"the course data has problems: {data.get('detail', '')}",
            f"{py} -m mmcourse data")
    return problems


def _pin(packages: dict, name: str) -> str:
    row = packages.get(name)
    return f"{name}=={row['pinned']}" if row and row["pinned"] else name


def _import_entry(probe: dict, key: str, dist_name: str | None, module: str) -> dict:
    error = _import_failure(probe, key)
    if error is None and key in probe:
        return {"status": "ok", "version": probe[key]}
    entry = {"status": "broken", "error": error or "no result"}
    if dist_name and installed_version(dist_name) is None and "failure" not in probe \
            and "ModuleNotFoundError" in entry["error"]:
        entry["status"] = "missing"
    shadow = _shadowing(dist_name, module) if dist_name else None
    if shadow:
        entry["shadowed_by"] = shadow
    return entry


def _python_section() -> dict:
    version = sys.version_info[:3]
    ok = PYTHON_RANGE[0] <= version[:2] <= PYTHON_RANGE[1]
    return {"version": ".".join(map(str, version)), "executable": sys.executable,
            "shown": shown_python(), "status": "ok" if ok else "unsupported"}


def _disk_section() -> dict:
    usage = shutil.disk_usage(REPO_ROOT)
    return {"path": str(REPO_ROOT), "free_gb": round(usage.free / 1e9, 1),
            "total_gb": round(usage.total / 1e9, 1)}


def _data_ready() -> bool:
    try:
        has_module = importlib.util.find_spec("mmcourse.data.scenes") is not None
    except (ImportError, ValueError):
        has_module = False
    return has_module and (DATA_DIR / "manifest.json").is_file()


def _data_section(probe: dict | None) -> dict:
    shown = _relative(DATA_DIR)
    if probe is None:
        return {"status": "not generated", "path": shown}
    error = _import_failure(probe, "data")
    if error is not None:
        return {"status": "not checked", "path": shown, "detail": error}
    problems = probe.get("problems", [])
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return {"status": "problems", "path": shown, "problems": problems,
                "detail": "; ".join(problems[:3]) + more}
    return {"status": "ok", "path": shown}


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def collect(timeout: float | None = None) -> dict:
    """Run every check and return the report as a dict (what ``--json`` prints).

    ``report["ok"]`` is False when something essential is missing or broken;
    ``report["problems"]`` lists each problem with its fix. Introduced in notebook 00.
    """
    report: dict = {"python": _python_section()}
    try:
        requirements = parse_requirements(REQUIREMENTS.read_text(encoding="utf-8"))
        report["requirements_error"] = None
    except (OSError, ValueError) as error:
        requirements = [Requirement(name, None) for name in ESSENTIAL]
        report["requirements_error"] = str(error)
    report["packages"] = check_packages(requirements)

    names = list(PROBES) + (["data"] if _data_ready() else [])
    probes = run_probes(names, timeout=timeout)

    tf_probe = probes["tensorflow"]
    tf_entry = _import_entry(tf_probe, "tensorflow", "tensorflow", "tensorflow")
    if tf_entry["status"] == "ok":
        devices = tf_probe.get("devices", [])
        tf_entry["devices"] = [name for _, name in devices]
        tf_entry["gpus"] = sum(kind == "GPU" for kind, _ in devices)
        tf_entry["built_with_cuda"] = tf_probe.get("built_with_cuda")
    keras_entry = _import_entry(tf_probe, "keras", "keras", "keras")
    if keras_entry["status"] == "ok":
        keras_entry["backend"] = tf_probe.get("keras_backend")
    elif tf_entry["status"] != "ok" and keras_entry["status"] == "broken":
        keras_entry = {"status": "not checked", "error": "needs a working TensorFlow (see above)"}
    cv_entry = _import_entry(probes["cv2"], "cv2", "opencv-python-headless", "cv2")
    if cv_entry["status"] == "ok":
        cv_entry["build"] = probes["cv2"].get("build", [])
        cv_entry["distribution"] = next(
            (name for name in ("opencv-python-headless", *ALTERNATIVES["opencv-python-headless"])
             if _dist_exact(name)), None)
    jupyter_probe = probes["jupyter"]
    report["imports"] = {
        "tensorflow": tf_entry,
        "keras": keras_entry,
        "numpy": _import_entry(probes["numpy"], "numpy", "numpy", "numpy"),
        "cv2": cv_entry,
        "matplotlib": _import_entry(probes["matplotlib"], "matplotlib", "matplotlib",
                                    "matplotlib"),
        "jupyterlab": _import_entry(jupyter_probe, "jupyterlab", "jupyterlab", "jupyterlab"),
    }
    jupyter = {"kernel": None, "kernel_error": _import_failure(jupyter_probe, "kernel")}
    kernel = jupyter_probe.get("kernel")
    if kernel:
        kernel["same_python"] = _same_file(kernel["python"], sys.executable)
        kernel["python"] = shown_python(kernel["python"])
        jupyter["kernel"] = kernel
    report["jupyter"] = jupyter
    try:
        report["disk"] = _disk_section()
    except OSError as error:
        report["disk"] = {"path": str(REPO_ROOT), "free_gb": None, "error": str(error)}
    report["data"] = _data_section(probes.get("data"))
    report["nvidia_smi"] = shutil.which("nvidia-smi") is not None
    return finish(report)


def _dist_exact(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def finish(report: dict) -> dict:
    """Add ``problems``, ``ok``, ``exit_code`` and ``verdict`` to a report."""
    problems = diagnose(report)
    errors = [p for p in problems if p["severity"] == "error"]
    warnings = [p for p in problems if p["severity"] == "warning"]
    report["problems"] = problems
    report["ok"] = not errors
    report["exit_code"] = 1 if errors else 0
    if errors:
        fixes = _unique(p["fix"] for p in errors)
        report["verdict"] = (f"NOT READY: {len(errors)} essential problem(s). "
                             f"Fix: {' ; then '.join(fixes)}")
    elif warnings:
        report["verdict"] = f"READY, with {len(warnings)} warning(s) listed above."
    else:
        report["verdict"] = "READY: everything the course needs is installed and works."
    return report


def _unique(items) -> list:
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# --- text output ------------------------------------------------------------------


def format_report(report: dict) -> str:
    """The report as the text ``python -m mmcourse doctor`` prints."""
    lines = ["mmcourse doctor", ""]
    python = report["python"]
    mark = "ok" if python["status"] == "ok" else "UNSUPPORTED (needs 3.10-3.12)"
    lines.append(f"Python       {python['version']}  {mark}  ({python['shown']})")

    lines += ["", "Packages (requirements.txt)      pinned        installed     status"]
    if report.get("requirements_error"):
        lines.append(f"  cannot read requirements.txt: {report['requirements_error']}")
    for row in report["packages"]:
        status = row["status"] if row["status"] == "ok" else row["status"].upper()
        lines.append(f"  {row['name']:<30} {row['pinned'] or '-':<13} {row['installed'] or '-':<13} "
                     f"{status}")

    imports = report["imports"]
    lines.append("")
    tf = imports["tensorflow"]
    if tf["status"] == "ok":
        lines.append(f"TensorFlow   {tf['version']}")
        lines.append(f"  devices    {', '.join(tf['devices']) or 'none'}")
        gpu = (f"{tf['gpus']} GPU(s)" if tf["gpus"] else
               "none visible: training runs on the CPU (fine for this course; "
               "GPUs: docs/SETUP.md)")
        lines.append(f"  GPU        {gpu}")
    else:
        lines.append(f"TensorFlow   {tf['status'].upper()}: {tf['error']}")
    keras = imports["keras"]
    if keras["status"] == "ok":
        lines.append(f"Keras        {keras['version']}  (backend: {keras.get('backend')})")
    else:
        lines.append(f"Keras        {keras['status'].upper()}: {keras['error']}")
    for module, label in (("numpy", "NumPy"), ("matplotlib", "Matplotlib")):
        entry = imports[module]
        text = entry["version"] if entry["status"] == "ok" else \
            f"{entry['status'].upper()}: {entry['error']}"
        lines.append(f"{label:<12} {text}")
    cv = imports["cv2"]
    if cv["status"] == "ok":
        lines.append(f"OpenCV       {cv['version']}  ({cv.get('distribution') or 'unknown build'})")
        lines += [f"  {line}" for line in cv.get("build", [])]
    else:
        lines.append(f"OpenCV       {cv['status'].upper()}: {cv['error']}")

    lab = imports["jupyterlab"]
    lines.append("")
    lines.append("JupyterLab   " + (lab["version"] if lab["status"] == "ok"
                                    else f"{lab['status'].upper()}: {lab['error']}"))
    kernel = report["jupyter"]["kernel"]
    if kernel:
        same = "this environment" if kernel["same_python"] else "ANOTHER environment"
        lines.append(f"  kernel     {kernel['name']} ({kernel['display_name']}) runs "
                     f"{kernel['python']}: {same}")
    else:
        lines.append(f"  kernel     not found: {report['jupyter']['kernel_error']}")

    disk = report["disk"]
    lines.append("")
    if disk.get("free_gb") is None:
        lines.append(f"Disk         unknown: {disk.get('error')}")
    else:
        lines.append(f"Disk         {disk['free_gb']:.1f} GB free of {disk['total_gb']:.1f} GB")
    data = report["data"]
    detail = {"ok": "present and intact", "not generated": "not generated: run `make setup`"}
    lines.append(f"Course data  {data['path']}/: "
                 f"{detail.get(data['status'], data['status'] + ': ' + data.get('detail', ''))}")

    if report["problems"]:
        lines += ["", f"Problems (run fixes from the repository root, {REPO_ROOT}):"]
        for problem in report["problems"]:
            lines.append(f"  [{problem['severity']}] {problem['what']}")
            lines.append(f"      fix: {problem['fix']}")
    lines += ["", f"VERDICT: {report['verdict']}"]
    return "\n".join(lines)


def main(as_json: bool = False) -> int:
    """The CLI: print the report (text or one JSON object); return the exit code."""
    try:
        report = collect()
    except Exception as error:  # the doctor must answer with a verdict, whatever happens
        report = {"ok": False, "exit_code": 1, "problems": [],
                  "verdict": f"NOT READY: the doctor itself failed ({type(error).__name__}: "
                             f"{error}). Fix: make clean && make setup"}
        if as_json:
            print(json.dumps(report, indent=2))
        else:
            print(f"VERDICT: {report['verdict']}")
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return report["exit_code"]


__all__ = ["collect", "diagnose", "format_report", "main"]
