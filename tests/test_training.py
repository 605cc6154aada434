"""mmcourse.train.tasks: determinism of train(), the result dict, and the CLI contract
(`python -m mmcourse train`): JSON on stdout, exit code 2 with the valid names."""

import argparse
import json
import subprocess
import sys

import keras  # noqa: F401
import numpy as np
import pytest

from mmcourse import REPO_ROOT
from mmcourse.cli import commands_train
from mmcourse.train import tasks as training

QUICK = {"epochs": 1, "train_size": 256, "test_size": 128, "validate": False, "log": None}


def _args(**overrides):
    values = {"task": "match", "fusion": "concat", "level": "attributes", "epochs": 1,
              "seed": 0, "root": None, "json": True, **overrides}
    return argparse.Namespace(**values)


def test_same_seed_same_result_and_weights(course_data):
    first = training.train("match", "multiply", seed=3, root=course_data, keep_model=True,
                           **QUICK)
    second = training.train("match", "multiply", seed=3, root=course_data, keep_model=True,
                            **QUICK)
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["history"] == second["history"]
    for a, b in zip(first["model"].get_weights(), second["model"].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = training.train("match", "multiply", seed=4, root=course_data, keep_model=True,
                           **QUICK)
    assert not all(np.array_equal(a, b) for a, b in zip(
        first["model"].get_weights(), other["model"].get_weights(), strict=True))


def test_result_dict_has_the_documented_keys(course_data):
    result = training.train("match", "image", seed=0, root=course_data, **QUICK)
    for key in ("task", "fusion", "level", "test_accuracy", "params", "train_seconds",
                "epochs_run", "seed", "seconds_per_epoch", "history"):
        assert key in result, key
    assert (result["task"], result["fusion"], result["level"]) == ("match", "image", "attributes")
    assert result["epochs_run"] == 1 and result["train_examples"] == 256
    assert result["test_examples"] == 128 and 0 <= result["test_accuracy"] <= 1
    assert "model" not in result
    json.dumps(result)  # JSON-ready


def test_train_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown fusion 'outer'; valid names: image, text"):
        training.train("match", "outer")
    with pytest.raises(ValueError, match="unknown level 'colours'; valid names: attributes"):
        training.train("match", "concat", level="colours")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        training.train("match", "concat", epochs=0)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"fusion": "outer"}, "unknown fusion 'outer'; valid names: image, text, concat"),
    ({"task": "translate"}, "unknown task 'translate'; valid names: match, qa"),
    ({"epochs": 0}, "epochs must be a positive int"),
])
def test_the_train_command_exits_2_with_the_valid_names(overrides, message, capsys):
    assert commands_train.train_matcher(_args(**overrides)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_cli_unknown_fusion_is_not_a_traceback():
    completed = subprocess.run(
        [sys.executable, "-m", "mmcourse", "train", "--fusion", "outer", "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert completed.returncode == 2
    assert "valid names: image, text, concat, multiply" in completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""


@pytest.mark.slow
def test_the_train_command_prints_one_json_object(course_data, capsys):
    assert commands_train.train_matcher(_args(fusion="sum", root=str(course_data))) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is exactly one JSON object
    assert result["fusion"] == "sum" and result["epochs_run"] == 1
    assert result["train_examples"] == 4000 and isinstance(result["params"], int)
    assert "test accuracy" in captured.err  # logs go to stderr
