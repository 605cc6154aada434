"""Every flag of every command and mode is honoured or refused by name (issue 28, section 4).

The commands, their flags and positionals are read from argparse itself. Each case runs
``main()`` in this process with the function that does the work replaced by a recorder (its
arguments bound to its real signature), so a case takes milliseconds. A flag is *honoured*
when its value reaches that function (or the output it asks for appears) and the command
succeeds; it is *refused* when the command exits with status 2 and an error message that
names the flag, without calling the function. Anything else (the flag accepted and dropped, as
``train --data-dir ... --patience 1`` once was) fails. A new flag fails
``test_every_flag_of_every_command_has_a_probe`` until it gets a probe below."""

import argparse
import inspect
import json
import re
from pathlib import Path

import keras  # noqa: F401
import keras_hub  # noqa: F401
import pytest

from mmcourse import REPO_ROOT, bench, i18n
from mmcourse.__main__ import build_parser, main
from mmcourse.apps import deploy, finetune, owndata, photos, zero_shot
from mmcourse.classroom import grading, teaching
from mmcourse.cli import commands_deploy, doctor
from mmcourse.data import audio as audio_data
from mmcourse.data import folders, scans, store
from mmcourse.data import scenes as data
from mmcourse.hub import plan
from mmcourse.train import clap as clap_training
from mmcourse.train import clip as clip_training
from mmcourse.train import hub as hub_training
from mmcourse.train import hub_clip
from mmcourse.train import tasks as training
from mmcourse.train import video as video_training
from mmcourse.train import vlm as train_vlm


def _commands():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    return {name: [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
            for name, sub in choices.items()}


def _flag(action):
    return action.option_strings[-1] if action.option_strings else action.dest.upper()


# --- recorders ---------------------------------------------------------------------------------


class FakeModel:
    def __init__(self, calls):
        self.calls = calls

    def save(self, path):
        self.calls.append(("save", {"path": str(path)}))

    def save_to_preset(self, path):
        self.calls.append(("save", {"path": str(path)}))


#: enough keys for every command's text output
RESULT = {"task": "match", "fusion": "concat", "level": "attributes", "test_accuracy": 0.5,
          "test_loss": 0.7, "params": 10, "epochs_run": 1, "train_seconds": 1.0,
          "seconds_per_epoch": 1.0, "accuracy_by_type": {}, "retrieval_pairs": 4,
          "hit_rule": "same text", "recall_at_1": {"image_to_text": 0.5, "text_to_image": 0.5},
          "recall_at_5": {"image_to_text": 1.0, "text_to_image": 1.0},
          "zero_shot_accuracy": None, "arch": "llava", "exact_match": 0.5,
          "correct_statements": 0.5, "token_accuracy": 0.5, "trainable_params": 5,
          "samples": [], "accuracy": 0.5, "data_dir": "x", "pairs": "shuffled captions",
          "split_sizes": {}, "oov_rate": 0.0, "epochs": 1}


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    calls = []

    def record(module, name, result):
        signature = inspect.signature(getattr(module, name))

        def fake(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments, language_now=i18n.current())
            calls.append((name, arguments))
            value = result(arguments) if callable(result) else result
            return value

        monkeypatch.setattr(module, name, fake)

    def train_result(arguments):
        result = dict(RESULT)
        if arguments.get("keep_model"):
            result["model"] = FakeModel(calls)
        return result

    for module, name in ((training, "train"), (clip_training, "train_clip"),
                         (hub_clip, "train_hub_clip"), (train_vlm, "train_captioner"),
                         (train_vlm, "train_vqa"), (owndata, "train_folder"),
                         (hub_training, "train_paligemma_captioner")):
        record(module, name, train_result)
    record(clap_training, "train_clap",
           dict(RESULT, recall_at_1={"audio_to_text": 0.5, "text_to_audio": 0.5},
                zero_shot_accuracy=0.5))
    record(video_training, "train_video", RESULT)
    record(audio_data, "generate", None)
    record(audio_data, "verify", [])
    record(commands_deploy, "run_server", 0)
    record(doctor, "main", 0)
    record(store, "generate", None)
    record(store, "verify", [])
    record(store, "read_manifest", {"files": {}, "sizes": {}})
    record(commands_deploy, "run_predict", 0)
    record(deploy, "export", lambda a: {"task": "match", "saved_model_bytes": 1e6, **{
        f"tflite_{kind}{end}": 1 for kind in deploy.TFLITE_FILES for end in ("", "_bytes")},
        "tflite_note": "note"})
    record(teaching, "write_teacher_copies", [])
    record(teaching, "exercise_list", "")
    record(teaching, "sync_docs", [])
    record(grading, "grade", [])
    record(bench, "load", lambda a: lambda: bench.BenchResult(a["name"], "a recorded benchmark"))
    real_plan = plan.plan
    record(plan, "plan", lambda a: real_plan(a["model"], a["context"], a["batch"],
                                             memory={"ram_bytes": 10 ** 9}))
    record(finetune, "load_caption_folder", {"train": ([], ["a red circle"]),
                                             "test": ([], ["a blue square"])})
    record(finetune, "finetune", dict(RESULT, total_params=10, exact_match_before=0.0,
                                      exact_match_after=0.5, test_examples=1))
    record(finetune, "save_adapter", lambda a: Path(a["path"]).write_bytes(b"adapter"))
    record(photos, "caption_photos", [{"image": "a.png", "caption": "a red circle"}])
    monkeypatch.setattr(finetune, "load_with_adapter", lambda preset, adapter=None: None)
    record(zero_shot, "zero_shot_photos", [{"image": "a.png", "probabilities": [0.75, 0.25],
                                            "label": "cat"}])  # zero-shot (issue 22)
    monkeypatch.setattr(zero_shot, "load_clip", lambda preset: None)
    real_check = folders.check_folder
    monkeypatch.setattr(folders, "check_folder", lambda folder, *a, **k: (
        calls.append(("check_folder", {"folder": str(folder)})), real_check(folder, *a, **k))[1])
    return calls


@pytest.fixture
def places(tmp_path):
    own = tmp_path / "own"
    (own / "images").mkdir(parents=True)
    import cv2
    import numpy as np

    for index in range(3):
        cv2.imwrite(str(own / "images" / f"{index}.png"), np.full((8, 8, 3), 40 * index, np.uint8))
    (own / "captions.csv").write_text("image,text\n" + "".join(
        f"images/{index}.png,caption {index}\n" for index in range(3)), encoding="utf-8")
    (tmp_path / "root").mkdir()
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "alice.ipynb").write_text("{}")
    (tmp_path / "vocab.json").write_text("[]")
    return {"OWN": str(own), "ROOT": str(tmp_path / "root"), "DIR": str(tmp_path / "run"),
            "NEW": str(tmp_path / "new"), "SUBS": str(tmp_path / "subs"),
            "OUT": str(tmp_path / "out" / "grades.csv"), "VOCAB": str(tmp_path / "vocab.json"),
            "MODEL": str(tmp_path / "m.keras"), "SAVE": str(tmp_path / "saved.keras"),
            "CSV": str(tmp_path / "pairs.csv"), "IMAGE": str(tmp_path / "x.png"),
            "RESULTS": str(tmp_path / "results.csv"), "SERVED": str(own),
            "PRESET": str(REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"),
            "LORA": str(tmp_path / "a.lora.h5"), "PHOTOS": str(own / "images")}


# --- modes and probes --------------------------------------------------------------------------

#: command -> {mode: (base arguments, the worker that must run)}
MODES = {
    "doctor": {"report": ([], "main")},
    "data": {"generate": (["--root", "ROOT"], "generate"),
             "verify": (["--verify", "--root", "ROOT"], "verify"),
             "verify data/zh": (["--verify"], "verify"),
             "audio": (["--modality", "audio", "--root", "ROOT"], "generate")},
    "train": {"match": ([], "train"), "qa": (["--task", "qa"], "train"),
              "retrieval": (["--task", "retrieval"], "train_clip"),
              "retrieval keras_hub_clip": (["--task", "retrieval", "--arch", "keras_hub_clip"],
                                           "train_hub_clip"),
              "caption": (["--task", "caption"], "train_captioner"),
              "vqa": (["--task", "vqa"], "train_vqa"),
              "data-dir": (["--data-dir", "OWN"], "train_folder"),
              "paligemma": (["--task", "caption", "--arch", "paligemma"],
                            "train_paligemma_captioner"),
              "audio": (["--task", "retrieval", "--modality", "audio"], "train_clap"),
              "video": (["--modality", "video", "--fusion", "temporal"], "train_video")},
    "predict": {"one pair": (["--model", "MODEL", "--image", "IMAGE", "--text", "t"],
                             "run_predict"),
                "csv": (["--model", "MODEL", "--csv", "CSV"], "run_predict")},
    "export": {"export": (["--model", "MODEL", "--out", "NEW"], "export")},
    "check-data": {"check": (["OWN"], "check_folder")},
    "exercises": {"list": (["--list"], "exercise_list"),
                  "solutions": (["--solutions", "NEW"], "write_teacher_copies"),
                  "sync": (["--sync"], "sync_docs")},
    "grade": {"grade": (["SUBS", "--out", "OUT"], "grade")},
    "bench": {"bench": (["conv"], "load")},
    "serve": {"serve": (["--model", "SERVED"], "run_server")},
    "plan": {"plan": (["gemma3_4b"], "plan")},
    "finetune": {"finetune": (["--model", "PRESET", "--data-dir", "OWN", "--lora", "2",
                               "--save", "LORA"], "finetune")},
    "caption": {"caption": (["--model", "PRESET", "--images", "ROOT"], "caption_photos")},
    "zero-shot": {"zero-shot": (["--model", "PRESET", "--images", "PHOTOS", "--labels",
                                 "cat,dog"], "zero_shot_photos")},
}

#: flags that choose the mode (each mode's worker must run): not probed on their own
MODE_FLAGS = {("train", "--task"), ("train", "--data-dir"), ("data", "--verify"),
              ("predict", "--image"), ("predict", "--csv"), ("predict", "--model"),
              ("export", "--model"), ("export", "--out"), ("check-data", "FOLDER"),
              ("exercises", "--list"), ("exercises", "--solutions"), ("exercises", "--sync"),
              ("grade", "SUBMISSIONS"), ("grade", "--out"), ("bench", "NAMES"),
              ("data", "--modality"), ("train", "--modality"), ("serve", "--model"),
              ("plan", "MODEL"), ("finetune", "--model"), ("finetune", "--data-dir"),
              ("finetune", "--save"), ("caption", "--model"), ("caption", "--images"),
              ("zero-shot", "--model"), ("zero-shot", "--images"), ("zero-shot", "--labels")}


def _argument(name, value):
    """A probe: some recorded call has ``name`` == ``value``, as an argument or as a field of
    its ``config`` argument (a ``TrainConfig``: ``train``'s --epochs, --seed, ...)."""
    def probe(calls, out, places):
        wanted = places.get(value, value) if isinstance(value, str) else value
        return any(_same(arguments[name] if name in arguments else
                         getattr(arguments.get("config"), name, None), wanted)
                   for _, arguments in calls)
    return probe


def _same(value, wanted):
    """Equal, a path given as str or Path alike."""
    if isinstance(value, Path) or isinstance(wanted, Path):
        return str(value) == str(wanted)
    return type(value) is type(wanted) and value == wanted


def _json_out(calls, out, places):
    try:
        json.loads(out)
    except ValueError:
        return False
    return True


def _run_dir(calls, out, places):
    return any(arguments.get("run_dir") == places["DIR"] or
               str(arguments.get("path", "")).startswith(places["DIR"])
               for _, arguments in calls)


def _namespace(dest, value, worker="run_predict"):
    """A probe for a worker that takes the parsed ``args`` whole."""
    def probe(calls, out, places):
        return any(_same(getattr(arguments.get("args"), dest, None), places.get(value, value))
                   for name, arguments in calls if name == worker)
    return probe


#: (command, flag) -> (arguments that give it a non-default value, probe(calls, stdout, places))
PROBES = {
    ("doctor", "--json"): (["--json"], _argument("as_json", True)),
    ("data", "--root"): (["--root", "ROOT"], _argument("root", "ROOT")),
    ("data", "--seed"): (["--seed", "3"], _argument("seed", 3)),
    ("data", "--language"): (["--language", "zh"], lambda c, o, p: _argument(
        "language", "zh")(c, o, p) or any(str(a.get("root", "")).endswith("zh") for _, a in c)),
    ("train", "--fusion"): (["--fusion", "film"], _argument("fusion", "film")),
    ("train", "--arch"): (["--arch", "flamingo"], _argument("arch", "flamingo")),
    ("train", "--level"): (["--level", "relations"], _argument("level", "relations")),
    ("train", "--epochs"): (["--epochs", "2"], _argument("epochs", 2)),
    ("train", "--seed"): (["--seed", "3"], _argument("seed", 3)),
    ("train", "--root"): (["--root", "ROOT"], _argument("root", "ROOT")),
    ("train", "--json"): (["--json"], _json_out),
    ("train", "--strategy"): (["--strategy", "mirrored"], _argument("strategy", "mirrored")),
    ("train", "--run-dir"): (["--run-dir", "DIR"], _run_dir),
    ("train", "--resume"): (["--run-dir", "DIR", "--resume"], _argument("resume", True)),
    ("train", "--patience"): (["--patience", "1"], _argument("patience", 1)),
    ("train", "--batch-size"): (["--batch-size", "7"], _argument("batch_size", 7)),
    ("train", "--train-size"): (["--train-size", "5"], _argument("train_size", 5)),
    ("train", "--test-size"): (["--test-size", "5"], _argument("test_size", 5)),
    ("train", "--save"): (["--save", "SAVE"], _argument("save", "SAVE")),
    ("train", "--sequence-length"): (["--sequence-length", "5"],
                                     _argument("sequence_length", 5)),
    ("predict", "--text"): (["--text", "t"], _namespace("text", "t")),
    ("predict", "--json"): (["--json"], _namespace("json", True)),
    ("predict", "--skip-bad"): (["--skip-bad"], _namespace("skip_bad", True)),
    ("predict", "--out"): (["--out", "RESULTS"], _namespace("out", "RESULTS")),
    ("export", "--tflite"): (["--tflite"], _argument("tflite", True)),
    ("export", "--vocabulary"): (["--vocabulary", "VOCAB"], _argument("vocabulary", "VOCAB")),
    ("export", "--json"): (["--json"], _json_out),
    ("check-data", "--json"): (["--json"], _json_out),
    ("check-data", "--lang"): (["--lang", "zh"], lambda c, o, p: "读取了" in o),
    ("grade", "--lang"): (["--lang", "zh"], _argument("language_now", "zh")),
    ("exercises", "--markdown"): (["--markdown"], _argument("markdown", True)),
    ("exercises", "--list"): (["--list"], lambda c, o, p: any(n == "exercise_list" for n, _ in c)),
    ("exercises", "--solutions"): (["--solutions", "NEW"], _argument("out_dir", "NEW")),
    ("exercises", "--sync"): (["--sync"], lambda c, o, p: any(n == "sync_docs" for n, _ in c)),
    ("grade", "--jobs"): (["--jobs", "2"], _argument("jobs", 2)),
    ("grade", "--timeout"): (["--timeout", "9"], _argument("timeout", 9.0)),
    ("bench", "--json"): (["--json"], _json_out),
    ("data", "--sample-rate"): (["--sample-rate", "8000"], _argument("sample_rate", 8000)),
    ("serve", "--name"): (["--name", "m2"], _namespace("name", "m2", "run_server")),
    ("serve", "--host"): (["--host", "localhost"],
                          _namespace("host", "localhost", "run_server")),
    ("serve", "--port"): (["--port", "8600"], _namespace("port", 8600, "run_server")),
    ("serve", "--max-batch"): (["--max-batch", "4"],
                               _namespace("max_batch", 4, "run_server")),
    ("serve", "--batch-timeout-ms"): (["--batch-timeout-ms", "2"],
                                      _namespace("batch_timeout_ms", 2.0, "run_server")),
    ("serve", "--index"): (["--index", "ROOT"], _namespace("index", "ROOT", "run_server")),
    ("serve", "--max-body-mb"): (["--max-body-mb", "2"],
                                 _namespace("max_body_mb", 2.0, "run_server")),
    ("serve", "--max-requests"): (["--max-requests", "3"],
                                  _namespace("max_requests", 3, "run_server")),
    ("plan", "--context"): (["--context", "64"], _argument("context", 64)),
    ("plan", "--batch"): (["--batch", "3"], _argument("batch", 3)),
    ("plan", "--json"): (["--json"], _json_out),
    ("finetune", "--lora"): (["--lora", "3"], _argument("setting", 3)),
    ("finetune", "--epochs"): (["--epochs", "2"], _argument("epochs", 2)),
    ("finetune", "--json"): (["--json"], _json_out),
    ("caption", "--prompt"): (["--prompt", "caption zh"], _argument("prompt", "caption zh")),
    ("caption", "--json"): (["--json"], _json_out),
    ("zero-shot", "--template"): (["--template", "a {} here"],
                                  _argument("templates", ["a {} here"])),
    ("zero-shot", "--json"): (["--json"], _json_out),
}


def _cases():
    for command, actions in _commands().items():
        for mode, (base, worker) in MODES[command].items():
            for action in actions:
                flag = _flag(action)
                if (command, flag) in PROBES and flag not in base:  # base's flag sets the mode
                    yield pytest.param(command, mode, base, worker, flag,
                                       id=f"{command} [{mode}] {flag}")


def test_every_flag_of_every_command_has_a_probe():
    commands = _commands()
    assert set(MODES) == set(commands)
    missing = [(command, _flag(action)) for command, actions in commands.items()
               for action in actions if (command, _flag(action)) not in PROBES
               and (command, _flag(action)) not in MODE_FLAGS]
    assert missing == [], f"add a probe (or a mode) for {missing}"


def _run(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(("command", "mode", "base", "worker", "flag"), list(_cases()))
def test_each_flag_is_honoured_or_refused_by_name(recorded, places, capsys, command, mode,
                                                  base, worker, flag):
    extra, probe = PROBES[(command, flag)]
    argv = [places.get(a, a) for a in [command, *base, *extra]]
    status, out, err = _run(argv, capsys)
    ran = any(name == worker for name, _ in recorded)
    named = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", err.split("error:")[-1])
    refused = status == 2 and named is not None and not ran
    honoured = status == 0 and ran and probe(recorded, out, places)
    assert refused or honoured, (
        f"{' '.join(argv)}: neither honoured nor refused by name (exit {status}, worker "
        f"{worker} ran: {ran}, recorded {recorded}, stderr {err[-400:]!r})")
    assert "Traceback" not in err


@pytest.mark.parametrize(("command", "mode"), [(c, m) for c in MODES for m in MODES[c]])
def test_each_mode_runs_its_worker(recorded, places, capsys, command, mode):
    base, worker = MODES[command][mode]
    status, _, err = _run([places.get(a, a) for a in [command, *base]], capsys)
    assert status == 0, err
    assert any(name == worker for name, _ in recorded), recorded


def test_data_verify_without_root_verifies_the_chinese_folder(recorded, capsys):
    assert main(["data", "--verify", "--language", "zh"]) == 0
    capsys.readouterr()
    (arguments,) = [a for name, a in recorded if name == "verify"]
    assert arguments["root"] == data.DATA_DIR / "zh"


def test_train_data_dir_patience_reaches_keras_early_stopping(monkeypatch, tmp_path, capsys):
    """Not a recorder: a real (tiny) run whose callbacks are inspected."""
    from mmcourse.train import callbacks

    folder = scans.write_scan_folder(tmp_path / "scans", count=30, seed=0, language="en")
    made = []
    real = callbacks.make_callbacks

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(callbacks, "make_callbacks", spy)
    assert main(["train", "--data-dir", str(folder), "--epochs", "2", "--patience", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (stoppers,) = [[c for c in made_ if type(c).__name__ == "EarlyStopping"] for made_ in made]
    assert [(s.patience, s.monitor, s.restore_best_weights) for s in stoppers] == [
        (1, "val_loss", True)]
    assert result["epochs_run"] <= 2
