"""Every command of ``python -m mmcourse`` with bad arguments: exit status 2 (1 for a
file-system problem), a message on stderr that names the flag and what it expects, nothing
on stdout, and never a traceback. The cases run in-process (``main(argv)``, as ``python -m
mmcourse`` calls it); a few run in a subprocess, as a user types them, for the exit status."""

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmcourse import REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.data import scans, store
from mmcourse.data import scenes as data

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(*arguments):
    return subprocess.run([sys.executable, "-m", "mmcourse", *arguments], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=ENV, timeout=120)


def _run_in_process(arguments, capsys, monkeypatch):
    """``main(arguments)`` from the repository root, with what it printed, like ``_run``."""
    monkeypatch.chdir(REPO_ROOT)
    capsys.readouterr()
    try:
        status = main(list(arguments))
    except SystemExit as exit_:  # argparse's errors
        status = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(arguments, status, out, err)


def _assert_clean_error(completed, status, *needles):
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status, (completed.returncode, completed.stderr)
    assert completed.stdout == ""
    for needle in needles:
        assert needle in completed.stderr, (needle, completed.stderr)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "a_file.txt").write_text("not a folder")
    (folder / "empty").mkdir()
    (folder / "submissions").mkdir()
    (folder / "submissions" / "alice.ipynb").write_text("{}")
    return {"FILE": str(folder / "a_file.txt"), "UNDER_FILE": str(folder / "a_file.txt" / "sub"),
            "EMPTY": str(folder / "empty"), "MISSING": str(folder / "missing"),
            "SUBS": str(folder / "submissions"),
            "IN_SUBS": str(folder / "submissions" / "grades.csv"),
            "IN_EMPTY": str(folder / "empty" / "a.lora.h5"),
            "NEW_LORA": str(folder / "new.lora.h5"),
            "LORA_UNDER_FILE": str(folder / "a_file.txt" / "x.lora.h5"),
            "OWN_OK": str(scans.write_scan_folder(folder / "scans", count=12, seed=0,
                                                  language="en"))}


#: zero-shot with a preset folder (its flags are checked before the model loads; issue 22)
ZERO_SHOT = ["zero-shot", "--model", "docs/results/tiny_clip_attributes", "--images"]

BAD_ARGUMENTS = [
    # command, arguments, exit status, what stderr must name
    (["data", "--seed", "-1"], 2, ["argument --seed", "must be >= 0, got -1"]),
    (["data", "--seed", "two"], 2, ["argument --seed", "expected a whole number >= 0"]),
    (["data", "--root", "FILE"], 2, ["--root", "is a file, not a folder; give a folder"]),
    (["data", "--root", "FILE", "--verify"], 2, ["--root", "is a file, not a folder"]),
    (["data", "--root", "UNDER_FILE"], 2, ["--root", "is a file, not a folder"]),
    (["data", "--verify", "--root", "EMPTY"], 1,
     ["missing: manifest.json", "regenerate with `python -m mmcourse data --root"]),
    (["data", "--bogus"], 2, ["unrecognized arguments: --bogus"]),
    (["train", "--batch-size", "0"], 2, ["argument --batch-size", "must be >= 1, got 0"]),
    (["train", "--train-size", "0"], 2, ["argument --train-size", "must be >= 1, got 0"]),
    (["train", "--test-size", "0"], 2, ["argument --test-size", "must be >= 1, got 0"]),
    (["train", "--epochs", "0"], 2, ["argument --epochs", "must be >= 1, got 0"]),
    (["train", "--patience", "0"], 2, ["argument --patience", "must be >= 1, got 0"]),
    (["train", "--epochs", "2.5"], 2, ["argument --epochs", "expected a whole number >= 1"]),
    (["train", "--seed", "-3"], 2, ["argument --seed", "must be >= 0, got -3"]),
    (["train", "--resume"], 2, ["argument --resume", "needs --run-dir DIR"]),
    (["train", "--fusion", "outer"], 2,
     ["argument --fusion", "unknown fusion 'outer'", "valid names: image, text, concat"]),
    (["train", "--fusion", "objects", "--save", "m.keras"], 2,
     ["argument --save", "not with --fusion objects", "keep the model with --run-dir"]),
    (["train", "--fusion", "objects", "--data-dir", "EMPTY"], 2,
     ["argument --fusion", "objects only with the course data", "not with --data-dir"]),
    (["train", "--fusion", "transformer", "--data-dir", "EMPTY"], 2,
     ["argument --fusion", "transformer only with the course data", "try --fusion anchored"]),
    (["train", "--task", "translate"], 2,
     ["argument --task", "valid names: match, qa, retrieval, caption, vqa"]),
    (["train", "--arch", "llava"], 2, ["argument --arch", "only with --task caption"]),
    (["train", "--task", "caption", "--arch", "gpt"], 2,
     ["argument --arch", "invalid choice: 'gpt'"]),
    (["train", "--task", "caption", "--epochs", "3"], 2,
     ["argument --epochs", "not available with --task caption"]),
    (["train", "--task", "caption", "--resume"], 2,
     ["argument --resume", "not available with --task caption"]),
    (["train", "--task", "vqa", "--epochs", "3"], 2,
     ["argument --epochs", "not available with --task vqa", "VQA_EPOCHS"]),
    (["train", "--task", "vqa", "--strategy", "mirrored"], 2,
     ["argument --strategy", "not available with --task vqa"]),
    (["train", "--task", "vqa", "--test-size", "10"], 2,
     ["argument --test-size", "not available with --task vqa"]),
    (["train", "--task", "vqa", "--arch", "blip"], 2,
     ["argument --arch", "invalid choice: 'blip'"]),
    (["train", "--task", "vqa", "--arch", "paligemma"], 2,
     ["argument --arch", "paligemma only with --task caption, got --task vqa"]),
    (["train", "--task", "caption", "--arch", "paligemma", "--epochs", "0"], 2,
     ["argument --epochs"]),
    (["train", "--arch", "keras_hub_clip"], 2,
     ["argument --arch", "keras_hub_clip only with --task retrieval, got --task match"]),
    (["train", "--task", "caption", "--arch", "keras_hub_clip"], 2,
     ["argument --arch", "keras_hub_clip only with --task retrieval, got --task caption"]),
    (["train", "--task", "retrieval", "--arch", "llava"], 2,
     ["argument --arch", "with --task retrieval choose keras_hub_clip", "got llava"]),
    (["train", "--task", "retrieval", "--arch", "keras_hub_clip", "--save", "m.keras"], 2,
     ["argument --save", "only with --task match or qa"]),
    (["train", "--task", "qa", "--arch", "flamingo"], 2,
     ["argument --arch", "only with --task caption or vqa, got --task qa"]),
    (["train", "--task", "retrieval", "--resume"], 2,
     ["argument --resume", "not available with --task retrieval"]),
    (["train", "--task", "retrieval", "--patience", "2"], 2,
     ["argument --patience", "not available with --task retrieval"]),
    (["train", "--level", "colours"], 2, ["argument --level", "invalid choice: 'colours'"]),
    (["train", "--strategy", "tpu"], 2, ["argument --strategy", "invalid choice: 'tpu'"]),
    (["train", "--root", "MISSING"], 2, ["argument --root", "is not a folder",
                                         "python -m mmcourse data --root"]),
    (["train", "--run-dir", "FILE"], 2, ["argument --run-dir", "is a file; give a folder"]),
    (["check-data", "MISSING"], 2, ["argument FOLDER", "is not a folder"]),
    (["predict", "--image", "x.png"], 2, ["the following arguments are required: --model"]),
    (["predict", "--model", "MISSING"], 2, ["give both --image FILE and --text TEXT"]),
    (["predict", "--model", "MISSING", "--image", "x.png", "--text", "t"], 1,
     ["model file not found"]),
    (["predict", "--model", "EMPTY", "--image", "x.png", "--text", "t"], 1,
     ["holds no saved_model.pb"]),
    (["predict", "--model", "EMPTY", "--image", "x.png", "--text", "t", "--skip-bad"], 2,
     ["argument --skip-bad", "only with --csv FILE"]),
    (["predict", "--model", "EMPTY", "--csv", "x.csv", "--out", "FILE"], 2,
     ["argument --out", "should be a .csv file name"]),
    (["export", "--out", "MISSING"], 2, ["the following arguments are required: --model"]),
    (["export", "--model", "MISSING"], 2, ["the following arguments are required: --out"]),
    (["export", "--model", "MISSING", "--out", "EMPTY"], 1,
     ["--model", "model file not found"]),
    (["export", "--model", "FILE", "--out", "MISSING"], 1, ["--model", "cannot load model"]),
    (["export", "--model", "FILE", "--out", "FILE"], 2, ["argument --out", "is a file"]),
    (["export", "--model", "EMPTY", "--out", "MISSING"], 2, ["argument --model", "is a folder"]),
    (["train", "--data-dir", "MISSING"], 2, ["argument --data-dir", "is not a folder"]),
    (["train", "--root", "EMPTY", "--sequence-length", "5"], 2,
     ["argument --sequence-length", "only with --data-dir"]),
    (["train", "--task", "retrieval", "--save", "m.keras"], 2,
     ["argument --save", "only with --task match or qa"]),
    (["check-data"], 2, ["the following arguments are required: FOLDER"]),
    (["check-data", "EMPTY"], 1, ["captions.csv not found", "columns image,text"]),
    (["grade", "MISSING"], 2, ["argument SUBMISSIONS", "is not a folder"]),
    (["grade", "EMPTY"], 2, ["argument SUBMISSIONS", "no .ipynb notebooks in"]),
    (["grade", "SUBS", "--jobs", "0"], 2, ["argument --jobs", "must be >= 1, got 0"]),
    (["grade", "SUBS", "--timeout", "-1"], 2, ["argument --timeout", "seconds > 0, got -1"]),
    (["grade", "SUBS", "--timeout", "soon"], 2, ["argument --timeout", "expected a number"]),
    (["grade", "SUBS", "--out", "FILE"], 2, ["argument --out", "should be a .csv file name"]),
    (["grade", "SUBS", "--out", "IN_SUBS"], 2, ["argument --out", "is inside SUBMISSIONS"]),
    (["exercises"], 2, ["argument --list/--solutions/--sync", "give at least one"]),
    (["exercises", "--markdown"], 2, ["argument --markdown", "only with --list"]),
    (["exercises", "--solutions", "FILE"], 2, ["argument --solutions", "is a file"]),
    (["serve"], 2, ["the following arguments are required: --model"]),
    (["serve", "--model", "MISSING"], 2, ["argument --model", "not found"]),
    (["serve", "--model", "EMPTY", "--port", "70000"], 2, ["argument --port", "1 to 65535"]),
    (["serve", "--model", "EMPTY", "--port", "http"], 2, ["argument --port", "whole number"]),
    (["serve", "--model", "EMPTY", "--max-batch", "0"], 2,
     ["argument --max-batch", "must be >= 1, got 0"]),
    (["serve", "--model", "EMPTY", "--batch-timeout-ms", "-1"], 2,
     ["argument --batch-timeout-ms", "must be a finite number >= 0"]),
    (["serve", "--model", "EMPTY", "--max-body-mb", "0"], 2,
     ["argument --max-body-mb", "must be a finite number > 0"]),
    (["serve", "--model", "EMPTY", "--max-requests", "0"], 2,
     ["argument --max-requests", "must be >= 1"]),
    (["serve", "--model", "EMPTY", "--index", "FILE"], 2, ["argument --index", "not a folder"]),
    (["serve", "--model", "EMPTY", "--name", "a/b"], 2, ["argument --name", "without '/'"]),
    (["serve", "--model", "EMPTY"], 1, ["--model", "holds no saved_model.pb"]),
    (["serve", "--model", "FILE"], 1, ["--model", "neither an exported SavedModel folder"]),
    (["plan"], 2, ["the following arguments are required: MODEL"]),
    (["plan", "MISSING"], 2, ["argument MODEL", "neither a preset folder", "gemma3_4b"]),
    (["plan", "EMPTY"], 2, ["argument MODEL", "folder without config.json"]),
    (["plan", "FILE"], 2, ["argument MODEL", "not valid JSON"]),
    (["plan", "gemma3_4b", "--context", "0"], 2, ["argument --context", "must be >= 1, got 0"]),
    (["plan", "gemma3_4b", "--batch", "two"], 2,
     ["argument --batch", "expected a whole number >= 1"]),
    (["finetune"], 2, ["the following arguments are required: --model, --data-dir, --lora, "
                       "--save"]),
    (["finetune", "--model", "EMPTY", "--data-dir", "EMPTY", "--lora", "1", "--save",
      "x.lora.h5"], 2, ["argument --model", "has no config.json"]),
    (["finetune", "--model", "FILE", "--data-dir", "EMPTY", "--lora", "1", "--save",
      "x.lora.h5"], 2, ["argument --model", "is not a folder"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "MISSING",
      "--lora", "1", "--save", "x.lora.h5"], 2, ["argument --data-dir", "is not a folder"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "EMPTY",
      "--lora", "0", "--save", "x.lora.h5"], 2, ["argument --lora", "must be >= 1, got 0"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "EMPTY",
      "--lora", "1", "--save", "x.h5"], 2, ["argument --save", "ending in .lora.h5"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "EMPTY",
      "--lora", "1", "--save", "IN_EMPTY"], 2, ["argument --save", "inside --data-dir"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "EMPTY",
      "--lora", "1", "--save", "x.lora.h5", "--epochs", "0"], 2,
     ["argument --epochs", "must be >= 1, got 0"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "EMPTY",
      "--lora", "1", "--save", "NEW_LORA"], 1, ["argument --data-dir", "captions.csv"]),
    (["finetune", "--model", "docs/results/tiny_paligemma_attributes", "--data-dir", "OWN_OK",
      "--lora", "1", "--save", "LORA_UNDER_FILE"], 1, ["--save", "cannot write under"]),
    (["caption", "--images", "EMPTY"], 2, ["the following arguments are required: --model"]),
    (["caption", "--model", "EMPTY", "--images", "EMPTY"], 2,
     ["argument --model", "has no config.json"]),
    (["caption", "--model", "docs/results/tiny_paligemma_attributes", "--images", "MISSING"], 2,
     ["argument --images", "is not a folder"]),
    (["caption", "--model", "docs/results/tiny_paligemma_attributes", "--images", "EMPTY",
      "--prompt", " "], 2, ["argument --prompt", "must not be empty"]),
    (["caption", "--model", "docs/results/tiny_paligemma_attributes", "--images", "EMPTY"], 1,
     ["argument --images", "holds no image files"]),
    # --- zero-shot (issue 22): flags checked before a model loads ---
    (["zero-shot", "--images", "EMPTY", "--labels", "a,b"], 2,
     ["the following arguments are required: --model"]),
    (["zero-shot", "--model", "EMPTY", "--images", "EMPTY", "--labels", "a,b"], 2,
     ["argument --model", "has no config.json"]),
    ([*ZERO_SHOT, "MISSING", "--labels", "a,b"], 2,
     ["argument --images", "is not a folder"]),
    ([*ZERO_SHOT, "FILE", "--labels", "a,b"], 2,
     ["argument --images", "is not a folder"]),
    ([*ZERO_SHOT, "EMPTY"], 2,
     ["the following arguments are required: --labels"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", ""], 2,
     ["argument --labels", "an empty label"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "cat,,dog"], 2,
     ["argument --labels", "an empty label"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "cat"], 2,
     ["argument --labels", "at least two labels"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "cat,Cat"], 2,
     ["argument --labels", "'Cat' is given twice"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "a,b", "--template", "a photo"], 2,
     ["argument --template", "must hold '{}' once"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "a,b", "--template", "a {}", "--template", "{} and {}"], 2,
     ["argument --template", "'{} and {}' must hold '{}' once"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "a,b", "--template", "a {"], 2,
     ["argument --template", "write a literal brace twice"]),
    ([*ZERO_SHOT, "EMPTY", "--labels", "a,b"], 1,
     ["argument --images", "holds no image files"]),
    # --- end zero-shot ---
    (["bench", "nope"], 2, ["unknown benchmark 'nope'", "choose from"]),
    (["bench", "--bogus"], 2, ["unrecognized arguments: --bogus"]),
    (["doctor", "--bogus"], 2, ["unrecognized arguments: --bogus"]),
    (["doctor", "extra"], 2, ["unrecognized arguments: extra"]),
    (["bogus"], 2, ["argument COMMAND: invalid choice: 'bogus'", "'doctor'", "'train'"]),
]


@pytest.mark.parametrize(("arguments", "status", "needles"), BAD_ARGUMENTS,
                         ids=[" ".join(case[0]) for case in BAD_ARGUMENTS])
def test_bad_arguments_name_the_flag_without_a_traceback(paths, arguments, status, needles,
                                                         capsys, monkeypatch):
    arguments = [paths.get(argument, argument) for argument in arguments]
    _assert_clean_error(_run_in_process(arguments, capsys, monkeypatch), status, *needles)


SUBPROCESS_CASES = [0, 5, len(BAD_ARGUMENTS) - 1]  # a usage error (2), a file problem (1), a bad command


@pytest.mark.parametrize("case", SUBPROCESS_CASES,
                         ids=[" ".join(BAD_ARGUMENTS[case][0]) for case in SUBPROCESS_CASES])
def test_as_a_user_types_it_the_exit_status_and_message_are_the_same(paths, case):
    arguments, status, needles = BAD_ARGUMENTS[case]
    _assert_clean_error(_run(*[paths.get(argument, argument) for argument in arguments]),
                        status, *needles)


def test_every_command_is_covered():
    from mmcourse.__main__ import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    covered = {case[0][0] for case in BAD_ARGUMENTS}
    assert set(commands) <= covered, set(commands) - covered


def test_no_command_lists_the_commands_one_line_each():
    completed = _run()
    _assert_clean_error(completed, 2)
    for command in ("doctor", "data", "train", "bench"):
        assert re.search(rf"^\s+{command}\s+\w.+$", completed.stderr, re.MULTILINE), \
            (command, completed.stderr)


def _read_only_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if Path("/sys/kernel").is_dir():  # root may write anywhere, but not into sysfs
        return Path("/sys/kernel")
    pytest.skip("no read-only folder for root on this system")


def test_data_on_a_read_only_folder(tmp_path):
    folder = _read_only_folder(tmp_path)
    try:
        completed = _run("data", "--root", str(folder))
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o755)
    _assert_clean_error(completed, 1, f"--root {folder}", "cannot write there",
                        "choose a folder you can write to")


TINY = {level: {"train": 3, "val": 2, "test": 2} for level in data.LEVELS}


def test_data_when_the_disk_is_full(tmp_path, monkeypatch, capsys):
    root = store.generate(tmp_path / "data", seed=0, progress=False, sizes=TINY)
    before = (root / "manifest.json").read_bytes()

    def disk_full(path, records):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(data, "DEFAULT_SIZES", TINY)
    monkeypatch.setattr(data, "_write_jsonl", disk_full)
    assert main(["data", "--root", str(root), "--seed", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no space left on the device while writing --root {root}" in captured.err
    assert "free some space or choose another folder with --root" in captured.err
    assert "previous dataset, if any, is unchanged" in captured.err
    monkeypatch.undo()
    assert (root / "manifest.json").read_bytes() == before and store.verify(root) == []
    assert not list(root.glob(".partial-*"))


def test_data_when_opencv_cannot_write(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DEFAULT_SIZES", TINY)
    monkeypatch.setattr(data.cv2, "imwrite", lambda *args: False)  # how OpenCV fails
    assert main(["data", "--root", str(tmp_path)]) == 1
    assert "OpenCV could not write the image" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_train_when_the_disk_is_full(tmp_path, monkeypatch, capsys):
    from mmcourse.train import tasks as training

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "best.keras"))

    monkeypatch.setattr(training, "train", disk_full)
    assert main(["train", "--run-dir", str(tmp_path), "--epochs", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no space left on the device while writing --run-dir {tmp_path}" in captured.err
