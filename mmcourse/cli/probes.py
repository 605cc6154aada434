"""The import probes of ``doctor`` (notebook 00): every import that can fail or hang
(TensorFlow, Keras, OpenCV, ...) runs in a child process with a timeout, so a broken,
crashing or hanging library gives a verdict, never a traceback. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

PROBE_TIMEOUT_S = float(os.environ.get("MMCOURSE_DOCTOR_TIMEOUT", "120"))
_MARKER = "MMCOURSE-PROBE-JSON:"

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
        from mmcourse.data import scenes as data
        from mmcourse.data import store
        out["problems"] = [str(problem) for problem in store.verify()]
    except BaseException as error:
        record_error("data", "mmcourse.data.scenes", error)
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
