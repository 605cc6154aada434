"""`python -m mmcourse doctor`: requirement parsing, diagnosis, and broken environments."""

import copy
import json
import os
import subprocess
import sys

import pytest

from mmcourse.cli import doctor
from mmcourse.cli import requirements as pins
from mmcourse.paths import REPO_ROOT

PY = sys.executable


def run_doctor(*args, pythonpath=None, timeout_s=None, data_dir=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if data_dir is not None:  # an empty folder: skips re-hashing the real data
        env["MMCOURSE_DATA"] = str(data_dir)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    if timeout_s is not None:
        env["MMCOURSE_DOCTOR_TIMEOUT"] = str(timeout_s)
    return subprocess.run([PY, "-m", "mmcourse", "doctor", *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, timeout=180)


def fake_tensorflow(tmp_path, body):
    """A folder for PYTHONPATH whose `tensorflow` package runs `body` on import."""
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(body)
    return tmp_path


# --- import mmcourse stays light ------------------------------------------------


def test_import_mmcourse_and_doctor_do_not_import_tensorflow():
    code = ("import sys, mmcourse, mmcourse.cli.doctor; "
            "heavy = {'tensorflow', 'keras', 'cv2'} & set(sys.modules); "
            "assert not heavy, heavy")
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


# --- requirements ---------------------------------------------------------------


def test_parse_requirements_reads_pins_and_skips_comments():
    text = """
# a comment
tensorflow[and-cuda]==2.21.0   # extras are dropped
Keras == 3.15.1
opencv_python_headless==5.0.0.93 ; sys_platform != "win32"
-r other.txt
"""
    assert pins.parse_requirements(text) == [
        pins.Requirement("tensorflow", "2.21.0"),
        pins.Requirement("keras", "3.15.1"),
        pins.Requirement("opencv-python-headless", "5.0.0.93"),
    ]


def test_parse_requirements_rejects_a_loose_pin_naming_the_line():
    with pytest.raises(ValueError, match=r"line 2 is not an exact pin.*numpy>=2"):
        pins.parse_requirements("keras==3.15.1\nnumpy>=2\n")


def test_real_requirements_pin_every_essential_package():
    names = {r.name for r in pins.parse_requirements(pins.REQUIREMENTS.read_text())}
    assert set(pins.ESSENTIAL) <= names


def test_the_report_gives_the_keras_hub_version_against_its_pin():
    """Issue 21: doctor reports KerasHub (notebook 11), as pip sees it installed."""
    import importlib.metadata as importlib_metadata
    rows = pins.check_packages(pins.parse_requirements(pins.REQUIREMENTS.read_text()))
    row = next(r for r in rows if r["name"] == "keras-hub")
    assert row["pinned"] == "0.32.0"
    try:
        installed = importlib_metadata.version("keras-hub")
    except importlib_metadata.PackageNotFoundError:
        installed = None
    assert row["installed"] == installed


@pytest.mark.parametrize(("pinned", "installed", "status"), [
    ("2.21.0", "2.21.0", "ok"), ("2.21.0", "2.20.0", "mismatch"), ("2.21.0", None, "missing"),
])
def test_package_status(pinned, installed, status):
    assert pins.package_status(pinned, installed) == status


def test_check_packages_with_fake_installed_versions():
    requirements = [pins.Requirement("numpy", "2.4.6"), pins.Requirement("tqdm", "4.70.1"),
                    pins.Requirement("keras", "3.15.1")]
    installed = {"numpy": "1.26.4", "tqdm": "4.70.1"}
    rows = pins.check_packages(requirements, lookup=installed.get)
    assert [(r["name"], r["status"], r["essential"]) for r in rows] == [
        ("numpy", "mismatch", True), ("tqdm", "ok", False), ("keras", "missing", True)]


# --- diagnosis on fake reports -----------------------------------------------------


def healthy_report():
    """A report as `collect()` builds it, for a working environment (before `finish`)."""
    packages = [
        {"name": name, "pinned": pin, "installed": pin, "status": "ok",
         "essential": name in pins.ESSENTIAL}
        for name, pin in [("tensorflow", "2.21.0"), ("keras", "3.15.1"), ("numpy", "2.4.6"),
                          ("opencv-python-headless", "5.0.0.93"), ("matplotlib", "3.11.2"),
                          ("jupyterlab", "4.6.6"), ("ipykernel", "7.4.0"), ("tqdm", "4.70.1")]
    ]
    ok = {"status": "ok", "version": "1"}
    return {
        "python": {"version": "3.11.7", "executable": "/repo/.venv/bin/python",
                   "shown": ".venv/bin/python", "status": "ok"},
        "requirements_error": None,
        "packages": packages,
        "imports": {
            "tensorflow": {"status": "ok", "version": "2.21.0", "gpus": 0,
                           "devices": ["/physical_device:CPU:0"], "built_with_cuda": True},
            "keras": {"status": "ok", "version": "3.15.1", "backend": "tensorflow"},
            "numpy": dict(ok), "cv2": dict(ok, build=["GUI: NONE"]),
            "matplotlib": dict(ok), "jupyterlab": dict(ok),
        },
        "jupyter": {"kernel": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                               "python": ".venv/bin/python", "same_python": True},
                    "kernel_error": None},
        "disk": {"path": "/repo", "free_gb": 50.0, "total_gb": 100.0},
        "data": {"status": "ok", "path": "data"},
        "nvidia_smi": False,
    }


def finished(**changes):
    report = copy.deepcopy(healthy_report())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = report
        for key in parents:
            target = target[key] if not key.isdigit() else target[int(key)]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    return doctor.finish(report)


def test_healthy_report_is_ready_without_problems():
    report = finished()
    assert report["problems"] == [] and report["ok"] and report["exit_code"] == 0
    assert report["verdict"].startswith("READY")
    text = doctor.format_report(report)
    assert "VERDICT: READY" in text and "2.21.0" in text and "Traceback" not in text


def test_missing_tensorflow_is_essential_and_names_pip_install_requirements():
    report = finished(packages__0__installed=None, packages__0__status="missing",
                      imports__tensorflow={"status": "missing", "error": "ModuleNotFoundError"})
    assert report["exit_code"] == 1 and not report["ok"]
    assert report["verdict"].startswith("NOT READY: 1 essential problem")
    assert ".venv/bin/python -m pip install -r requirements.txt" in report["verdict"]


def test_broken_tensorflow_names_a_forced_reinstall_of_the_pin():
    report = finished(imports__tensorflow={"status": "broken",
                                           "error": "ImportError: libcudart.so.12: cannot open"})
    assert report["exit_code"] == 1
    assert report["problems"][0]["fix"] == (
        ".venv/bin/python -m pip install --force-reinstall tensorflow==2.21.0")


def test_numpy_abi_error_reinstalls_tensorflow_with_the_pinned_numpy():
    error = "ImportError: A module that was compiled using NumPy 1.x cannot be run in NumPy 2"
    report = finished(imports__tensorflow={"status": "broken", "error": error})
    assert report["problems"][0]["fix"].endswith("tensorflow==2.21.0 numpy==2.4.6")


def test_shadowed_package_names_the_path_that_hides_it():
    report = finished(imports__cv2={"status": "broken", "error": "ImportError: boom",
                                    "shadowed_by": "/home/me/notebooks/cv2.py"})
    assert report["exit_code"] == 1
    assert "rename or remove /home/me/notebooks/cv2.py" in report["problems"][0]["fix"]


def test_mismatch_is_a_warning_even_for_an_essential_package():
    report = finished(packages__2__installed="1.26.4", packages__2__status="mismatch",
                      packages__7__installed=None, packages__7__status="missing")
    assert report["exit_code"] == 0 and report["ok"]
    assert [p["severity"] for p in report["problems"]] == ["warning", "warning"]
    fixes = [p["fix"] for p in report["problems"]]
    assert fixes == [".venv/bin/python -m pip install numpy==2.4.6",
                     ".venv/bin/python -m pip install tqdm==4.70.1"]
    assert report["verdict"] == "READY, with 2 warning(s) listed above."


def test_unsupported_python_is_essential():
    report = finished(python__version="3.9.18", python__status="unsupported")
    assert report["exit_code"] == 1
    assert "PYTHON=python3.11 make setup" in report["verdict"]


def test_other_kernel_data_missing_low_disk_and_wrong_backend():
    report = finished(jupyter__kernel__same_python=False, jupyter__kernel__python="/usr/bin/python3",
                      data={"status": "not generated", "path": "data"}, disk__free_gb=0.5,
                      imports__keras__backend="jax")
    whats = {p["what"].split()[0]: p for p in report["problems"]}
    assert report["exit_code"] == 1  # only the Keras backend is essential
    assert whats["Keras"]["severity"] == "error"
    assert "ipykernel install --user --name mmcourse" in whats["JupyterLab's"]["fix"]
    assert whats["the"]["fix"] == "make setup"
    assert whats["only"]["severity"] == "warning"


def test_gpu_driver_without_visible_gpu_suggests_and_cuda():
    report = finished(nvidia_smi=True)
    assert report["exit_code"] == 0
    assert "tensorflow[and-cuda]==2.21.0" in report["problems"][0]["fix"]


# --- the real command ---------------------------------------------------------------


@pytest.mark.parametrize("body", [
    'raise ImportError("libcudart.so.12: cannot open shared object file")',
    "import sys; sys.exit(3)",
    "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
], ids=["import-error", "sys-exit", "segfault"])
def test_broken_tensorflow_gives_a_verdict_and_exit_1(tmp_path, body):
    result = run_doctor(pythonpath=fake_tensorflow(tmp_path, body), data_dir=tmp_path / "data")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "TensorFlow   BROKEN" in result.stdout
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("VERDICT: NOT READY")
    assert f"Fix: rename or remove {tmp_path / 'tensorflow'}" in verdict


def test_hanging_tensorflow_times_out_in_json_mode(tmp_path):
    result = run_doctor("--json", pythonpath=fake_tensorflow(tmp_path, "import time\ntime.sleep(60)"),
                        timeout_s=2, data_dir=tmp_path / "data")
    assert result.returncode == 1
    report = json.loads(result.stdout)  # stdout is JSON only
    assert report["imports"]["tensorflow"] == {
        "status": "broken", "error": "timed out after 2 s (hangs on import)",
        "shadowed_by": str(tmp_path / "tensorflow")}
    assert report["imports"]["keras"]["status"] == "not checked"
    assert report["exit_code"] == 1 and report["verdict"].startswith("NOT READY")
    assert report["data"]["status"] == "not generated"


@pytest.mark.slow
def test_this_environment_is_ready_in_json_mode():
    result = run_doctor("--json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["ok"] and report["verdict"].startswith("READY")
    assert report["imports"]["tensorflow"]["version"] == "2.21.0"
    assert any(d.endswith("CPU:0") for d in report["imports"]["tensorflow"]["devices"])
    assert report["imports"]["keras"]["backend"] == "tensorflow"
    assert {row["name"]: row["status"] for row in report["packages"]}["tensorflow"] == "ok"
    assert report["jupyter"]["kernel"]["same_python"]


def test_unreadable_requirements_still_checks_the_essentials():
    report = healthy_report()
    report["requirements_error"] = "No such file or directory"
    for row in report["packages"]:
        row["pinned"] = None
    report["packages"][1].update(installed=None, status="missing")  # keras
    report = doctor.finish(report)
    assert pins.package_status(None, "1.0") == "ok"
    assert report["exit_code"] == 1
    assert [p["fix"] for p in report["problems"]] == [
        "git checkout -- requirements.txt", ".venv/bin/python -m pip install keras"]
    assert "keras                          -" in doctor.format_report(report)
