"""Root pytest configuration, shared by the unit tests and nbval."""

import os

# Quiet TensorFlow's C++ logs in every process pytest starts, kernels included.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collectstart(collector):
    """Compare notebook outputs without stderr: TensorFlow logs there, and they vary."""
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
