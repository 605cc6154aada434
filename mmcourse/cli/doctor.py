"""Environment check: ``python -m mmcourse doctor [--json]`` (introduced in notebook 00).

The doctor reports the Python version, every pinned requirement against what is
installed, TensorFlow/Keras and the devices TensorFlow sees, the OpenCV build,
JupyterLab and the kernel it would start, free disk space and the course data.
It ends with a verdict and exits 1 when something essential is missing or broken,
printing the exact command that fixes it.

Every import that can fail or hang (TensorFlow, Keras, OpenCV, ...) runs in a
child process with a timeout, so a broken, crashing or hanging library gives a
verdict, never a traceback. This module itself imports only the standard library.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mmcourse.paths import DATA_DIR, REPO_ROOT

PYTHON_RANGE = ((3, 10), (3, 12))  # inclusive
REQUIREMENTS = REPO_ROOT / "requirements.txt"
# Requirement name -> the import a course notebook needs. These decide the exit code.
ESSENTIAL = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "numpy": "numpy",
    "opencv-python-headless": "cv2",
    "matplotlib": "matplotlib",
    "jupyterlab": "jupyterlab",
}
# Distributions that provide the same import as a pinned one (the desktop OpenCV swap).
ALTERNATIVES = {
    "opencv-python-headless": (
        "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless",
    ),
    "tensorflow": ("tensorflow-cpu", "tensorflow-macos"),
}
MIN_FREE_GB = 2.0
PROBE_TIMEOUT_S = float(os.environ.get("MMCOURSE_DOCTOR_TIMEOUT", "120"))
_MARKER = "MMCOURSE-PROBE-JSON:"


# --- requirements --------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One pinned line of requirements.txt: ``name==version``."""

    name: str
    version: str | None  # None: no pin known (requirements.txt unreadable)


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> list[Requirement]:
    """Pinned requirements from requirements.txt text; comments, blanks and options skipped.

    Extras are dropped (``tensorflow[and-cuda]==2.21.0`` gives ``tensorflow``).
    A line that is not an exact pin raises ``ValueError`` naming the line.
    """
    requirements = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s=<>!~,]+)",
                             line)
        if match is None:
            raise ValueError(f"requirements line {number} is not an exact pin "
                             f"'name==version': {raw.strip()!r}")
        requirements.append(Requirement(normalize(match.group(1)), match.group(3)))
    return requirements


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (or an alternative), else None."""
    for candidate in (name, *ALTERNATIVES.get(normalize(name), ())):
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_status(pinned: str | None, installed: str | None) -> str:
    """``ok`` when the installed version equals the pin (or there is no pin), ``missing``
    or ``mismatch`` else."""
    if installed is None:
        return "missing"
    return "ok" if pinned is None or installed == pinned else "mismatch"


def check_packages(requirements: list[Requirement], lookup=installed_version) -> list[dict]:
    """One row per requirement: name, pinned, installed, status, essential."""
    rows = []
    for requirement in requirements:
        installed = lookup(requirement.name)
        rows.append({
            "name": requirement.name,
            "pinned": requirement.version,
            "installed": installed,
            "status": package_status(requirement.version, installed),
            "essential": requirement.name in ESSENTIAL,
        })
    return rows


# --- probes: imports in child processes ---------------------------------------------

# Each probe runs as `python -c _PROBE NAME` and prints one marker line of JSON.
_PROBE = r'''
import json, sys
name = sys.argv[1]
out = {}
def record_error(key, module, error):
    out[key + "_error"] = f"{type(error).__name__}: {error}".strip().splitlines()[-1][:300]
if name == "tensorflow":
    try:
        import tensorflow as tf
        out["tensorflow"] = tf.__version__
        out["devices"] = [[d.device_type, d.name] for d in tf.config.list_physical_devices()]
        out["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
    except BaseException as error:
        record_error("tensorflow", "tensorflow", error)
    try:
        import keras
        out["keras"] = keras.__version__
        out["keras_backend"] = keras.backend.backend()
    except BaseException as error:
        record_error("keras", "keras", error)
elif name == "numpy":
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except BaseException as error:
        record_error("numpy", "numpy", error)
elif name == "cv2":
    try:
        import cv2
        out["cv2"] = cv2.__version__
        keep = ("GUI:", "FFMPEG:", "Parallel framework:")
        out["build"] = [" ".join(line.split()) for line in cv2.getBuildInformation().splitlines()
                        if line.strip().startswith(keep)]
    except BaseException as error:
        record_error("cv2", "cv2", error)
elif name == "matplotlib":
    try:
        import matplotlib
        out["matplotlib"] = matplotlib.__version__
        out["backend"] = matplotlib.get_backend()
    except BaseException as error:
        record_error("matplotlib", "matplotlib", error)
elif name == "jupyter":
    try:
        import jupyterlab
        out["jupyterlab"] = jupyterlab.__version__
    except BaseException as error:
        record_error("jupyterlab", "jupyterlab", error)
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        spec = KernelSpecManager().get_kernel_spec("python3")
        python = spec.argv[0] if spec.argv else ""
        if python in {"python", "python3", "python%d.%d" % sys.version_info[:2]}:
            python = sys.executable  # jupyter_client starts this interpreter for "python"
        out["kernel"] = {"name": "python3", "display_name": spec.display_name,
                         "python": python, "spec_dir": spec.resource_dir}
    except BaseException as error:
        record_error("kernel", "jupyter_client", error)
elif name == "data":
    try:
        from mmcourse.data import store
        out["problems"] = [str(problem) for problem in store.verify()]
    except BaseException as error:
        record_error("data", "mmcourse.data.store", error)
sys.stdout.flush()
print("\n''' + _MARKER + r'''" + json.dumps(out), flush=True)
'''

PROBES = ("tensorflow", "numpy", "cv2", "matplotlib", "jupyter")


def _probe_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the children's logs are captured anyway
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"crashed with signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"crashed with signal {-returncode}"
    return f"exited with code {returncode}"


def run_probes(names=PROBES, timeout: float | None = None,
               python: str = sys.executable) -> dict[str, dict]:
    """Run the named probes in parallel child processes; each result is a dict.

    A probe that crashes, exits or hangs gives ``{"failure": "..."}`` with the last
    line of its stderr, instead of raising.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    children = {}
    results: dict[str, dict] = {}
    for name in names:
        try:
            children[name] = subprocess.Popen(
                [python, "-c", _PROBE, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True, errors="replace", env=_probe_env())
        except OSError as error:
            results[name] = {"failure": f"could not start {python}: {error}"}
    deadline = time.monotonic() + timeout  # the probes run in parallel: one shared limit
    for name, child in children.items():
        try:
            stdout, stderr = child.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            results[name] = {"failure": f"timed out after {timeout:g} s (hangs on import)"}
            continue
        lines = [line for line in stdout.splitlines() if line.startswith(_MARKER)]
        if lines:
            try:
                results[name] = json.loads(lines[-1][len(_MARKER):])
                continue
            except ValueError:
                pass
        last = [line.strip() for line in stderr.splitlines() if line.strip()]
        detail = f": {last[-1][:300]}" if last else ""
        results[name] = {"failure": f"importing {name} {_describe_exit(child.returncode)}{detail}"}
    return results


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


__all__ = ["Requirement", "check_packages", "collect", "diagnose", "format_report", "main",
           "package_status", "parse_requirements", "run_probes"]
