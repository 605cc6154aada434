"""The ``train`` command: one function per task, and the checks of its flags.

``train`` checks what argparse cannot, then hands the parsed arguments to the function of
its task (``TASKS``), of your own folder (``--data-dir``, notebook 09) or of another
modality (``--modality audio|video``, notebook 13). The trainers themselves live in
``mmcourse.train``, ``mmcourse.apps.owndata``, ``mmcourse.clip`` and ``mmcourse.vlm``.
Introduced in notebook 04; retrieval in 07, caption and vqa in 08, KerasHub in 11.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mmcourse.cli.arguments import file_system_error
from mmcourse.names import (
    COURSE_SCENE_FUSIONS,
    FUSIONS,
    HUB_CAPTION_ARCHS,
    HUB_RETRIEVAL_ARCHS,
    MODEL_TASKS,
    NEW_TASKS,
    OBJECT_FUSIONS,
    VLM_TASKS,
)

#: For each modality: the one task it trains and the --fusion values it takes (None: none).
MODALITY_TASKS = {"audio": ("retrieval", None), "video": ("match", ("temporal", "average"))}


def train(parser: argparse.ArgumentParser, args) -> int:
    """``python -m mmcourse train``: exit 0 on success, 2 on bad arguments (named), 1 on a
    file-system problem (disk full, read-only run folder)."""
    if args.modality != "image":  # issue 27 (notebook 13)
        return modality_train(parser, args)
    _check_train_arguments(parser, args)
    if args.data_dir is not None:
        return train_data_dir(parser, args)
    try:
        return TASKS[args.task](args)
    except OSError as error:  # disk full, read-only run folder, ...
        flag, path = ("--run-dir", args.run_dir) if args.run_dir else (
            ("--save", args.save) if args.save else ("", error.filename))
        print(file_system_error(error, flag, path), file=sys.stderr)
        return 1


def log_to_stderr(message: str) -> None:
    """One line to stderr, so stdout stays clean for ``--json``."""
    print(message, file=sys.stderr, flush=True)


def train_config(args):
    """The command line's fit options (--epochs, --seed, --batch-size, --patience) as a
    ``mmcourse.train.core.TrainConfig``; flags left out stay None, for the trainer's
    defaults."""
    from mmcourse.train.core import TrainConfig

    return TrainConfig(epochs=args.epochs, seed=args.seed,
                       **{name: getattr(args, name) for name in ("batch_size", "patience")
                          if getattr(args, name, None) is not None})


def train_matcher(args) -> int:
    """``train --task match|qa``: the matcher of notebooks 04-06 (``mmcourse.train.tasks``);
    2 when the trainer refuses a value (its message names it)."""
    from mmcourse.train import tasks as training

    extra = {name: getattr(args, name) for name in (
        "strategy", "run_dir", "resume", "train_size", "test_size", "save")
        if getattr(args, name, None) is not None}
    try:
        result = training.train(args.task, args.fusion, args.level, train_config(args),
                                root=args.root, **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['task']}/{result['fusion']} on {result['level']}: test accuracy "
              f"{result['test_accuracy']:.4f}, {result['params']:,} parameters, "
              f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s "
              f"({result['seconds_per_epoch']:.2f} s/epoch)")
        _print_accuracy_by_type(result["accuracy_by_type"])
    return 0 if math.isfinite(result["test_loss"]) else 1


def _print_accuracy_by_type(by_type: dict) -> None:
    """One line: each question kind's accuracy (``accuracy_by_type``), kinds without
    questions left out."""
    print("accuracy by type: " + ", ".join(
        f"{kind} {value:.3f}" for kind, value in by_type.items() if value is not None))


def _train_and_save(args, train_function, *arguments, **options):
    """Run ``train_function`` with the command line's --batch-size and --train-size, save its
    model in --run-dir and print the JSON with --json. Returns the result dict for the
    caller to print, or an exit status (0 after --json, 2 on a bad argument)."""
    extra = {name: getattr(args, name) for name in ("batch_size", "train_size")
             if getattr(args, name, None) is not None}
    try:
        result = train_function(*arguments, keep_model=args.run_dir is not None, **options,
                                **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.run_dir is not None:
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
        result.pop("model").save(Path(args.run_dir) / "model.keras")
    if args.json:
        print(json.dumps(result))
        return 0
    return result


def train_retrieval(args) -> int:
    """``train --task retrieval``: CLIP on the retrieval pairs (``mmcourse.train.clip``);
    with ``--arch keras_hub_clip`` KerasHub's CLIP, same loss and scores
    (``mmcourse.train.hub_clip``, notebook 11)."""
    if args.arch == "keras_hub_clip":
        from mmcourse.train import hub_clip  # noqa: PLC0415

        result = _train_and_save(args, hub_clip.train_hub_clip, args.level, args.epochs,
                                 args.seed, args.root, log=log_to_stderr)
    else:
        from mmcourse.train import clip as clip_training  # noqa: PLC0415

        result = _train_and_save(args, clip_training.train_clip, args.level, args.epochs,
                                 args.seed, args.root)
    if not isinstance(result, dict):
        return result
    recall = {k: result[k] for k in ("recall_at_1", "recall_at_5")}
    print(f"retrieval{'/' + result['arch'] if 'arch' in result else ''} on {result['level']}: "
          f"{result['params']:,} parameters, "
          f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s; "
          f"{result['retrieval_pairs']} test pairs ({result['hit_rule']})")
    for k, values in recall.items():
        print(f"  {k}: image->text {values['image_to_text']:.3f}, "
              f"text->image {values['text_to_image']:.3f}")
    if result["zero_shot_accuracy"] is not None:
        print(f"  zero-shot accuracy over {result['zero_shot_classes']} prompts: seen "
              f"{result['zero_shot_accuracy']:.3f}, held-out combinations "
              f"{result['zero_shot_heldout_accuracy']:.3f} (chance {result['chance']:.3f})")
    return 0


def train_hub_caption(args) -> int:
    """``train --task caption --arch paligemma``: KerasHub's tiny PaliGemma
    (``mmcourse.train.hub``, notebook 11); ``--run-dir`` keeps it as a preset folder."""
    from mmcourse.hub import presets as hub_presets
    from mmcourse.train import hub as hub_training  # noqa: PLC0415

    extra = {name: getattr(args, name) for name in ("batch_size", "train_size")
             if getattr(args, name, None) is not None}
    try:
        result = hub_training.train_paligemma_captioner(
            args.level, args.seed, args.root, epochs=args.epochs, log=log_to_stderr,
            keep_model=args.run_dir is not None, **extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.run_dir is not None:
        hub_presets.save_preset(result.pop("model"), Path(args.run_dir) / "tiny_paligemma")
    if args.json:
        print(json.dumps(result))
        return 0
    _print_captions(result, "paligemma", f"{result['params']:,} parameters, "
                                         f"{result['epochs']} epochs in "
                                         f"{result['train_seconds']:.0f} s")
    return 0


def _print_captions(result: dict, arch: str, cost: str) -> None:
    """A captioner's text output: notebook 08's three scores, ``cost`` (its parameters and
    time), then each sample's reference and generated caption."""
    print(f"caption/{arch} on {result['level']}: exact match {result['exact_match']:.3f}, "
          f"correct statements {result['correct_statements']:.3f}, token accuracy "
          f"{result['token_accuracy']:.3f}; {cost}")
    for sample in result["samples"]:
        print(f"  {sample['reference']!r} -> {sample['generated']!r}")


def train_caption(args) -> int:
    """``train --task caption``: an image captioner (``mmcourse.train.vlm.train_captioner``)."""
    from mmcourse.train import vlm as vlm_training  # noqa: PLC0415

    if args.arch == "paligemma":
        return train_hub_caption(args)
    result = _train_and_save(args, vlm_training.train_captioner, args.level, args.arch or "llava",
                             args.seed, args.root, log=log_to_stderr)
    if not isinstance(result, dict):
        return result
    _print_captions(result, result["arch"], f"{result['params']:,} parameters "
                                            f"({result['trainable_params']:,} trainable in "
                                            f"stage 2), {result['train_seconds']:.0f} s")
    return 0


def train_vqa(args) -> int:
    """``train --task vqa``: answers written by a VLM (``mmcourse.train.vlm.train_vqa``)."""
    from mmcourse.train import vlm as vlm_training  # noqa: PLC0415

    result = _train_and_save(args, vlm_training.train_vqa, args.level, args.arch or "llava",
                             args.seed, args.root, log=log_to_stderr)
    if not isinstance(result, dict):
        return result
    print(f"vqa/{result['arch']} on {result['level']}: accuracy {result['accuracy']:.3f}; "
          f"{result['params']:,} parameters ({result['trainable_params']:,} trainable in "
          f"stage 2), {result['train_seconds']:.0f} s")
    _print_accuracy_by_type(result["accuracy_by_type"])
    for sample in result["samples"]:
        print(f"  {sample['question']!r} -> {sample['generated']!r} (reference "
              f"{sample['answer']!r})")
    return 0


#: ``--task`` -> the function that trains it (caption picks KerasHub's PaliGemma by --arch)
TASKS = {"match": train_matcher, "qa": train_matcher, "retrieval": train_retrieval,
         "caption": train_caption, "vqa": train_vqa}


def _check_data_dir_arguments(parser: argparse.ArgumentParser, args) -> None:
    """``train --data-dir``: the folder must exist; flags of the course data do not apply."""
    if not Path(args.data_dir).is_dir():
        parser.error(f"argument --data-dir: {args.data_dir} is not a folder; give the folder "
                     f"that holds captions.csv and the images")
    for flag, value, default in (("--root", args.root, None), ("--level", args.level,
                                 "attributes"), ("--resume", args.resume, False),
                                 ("--run-dir", args.run_dir, None),
                                 ("--strategy", args.strategy, "default"),
                                 ("--train-size", args.train_size, None),
                                 ("--test-size", args.test_size, None)):
        if value != default:
            parser.error(f"argument {flag}: not used with --data-dir (your folder is split "
                         f"by image into train, val and test)")
    if args.task != "match":
        parser.error(f"argument --task: --data-dir trains the match task only, got "
                     f"{args.task!r}")
    if args.fusion in COURSE_SCENE_FUSIONS:
        parser.error(f"argument --fusion: {args.fusion} only with the course data "
                     f"({COURSE_SCENE_FUSIONS[args.fusion]}), not with --data-dir; try "
                     f"--fusion anchored")


def _check_train_arguments(parser: argparse.ArgumentParser, args) -> None:
    """What argparse cannot check alone; exits 2 with the flag's name."""

    if args.task in NEW_TASKS and args.fusion is not None:  # issue 28: never ignored quietly
        parser.error(f"argument --fusion: only with --task match or qa; --task {args.task} has "
                     f"no fusion to choose")
    args.fusion = args.fusion or "concat"
    if args.data_dir is None and args.sequence_length is not None:
        parser.error("argument --sequence-length: only with --data-dir FOLDER (your own data)")
    if args.save is not None:
        if Path(args.save).suffix != ".keras":
            parser.error(f"argument --save: the file name must end in .keras, got {args.save}")
        if args.task in NEW_TASKS:
            parser.error(f"argument --save: only with --task match or qa; --task {args.task} "
                         f"saves its model with --run-dir DIR")
        if args.strategy == "multiworker":
            parser.error("argument --save: not with --strategy multiworker (every worker would "
                         "write it); each worker's model.keras goes to --run-dir")
        if args.fusion in OBJECT_FUSIONS:  # issue 25: object tokens, no raw-input form
            parser.error(f"argument --save: not with --fusion {args.fusion} (it reads object "
                         f"tokens from mmcourse.data.objects, not images, so it cannot be exported "
                         f"or served); keep the model with --run-dir DIR")
    if args.root is not None and (Path(args.root) / "captions.csv").is_file():
        parser.error(f"argument --root: {args.root} holds a captions.csv, so it looks like "
                     f"your own data. --root is the course dataset's folder (generated there "
                     f"if missing); to train on your folder, use --data-dir {args.root}")
    for flag, value, valid in (("--task", args.task, (*MODEL_TASKS, *NEW_TASKS)),
                               ("--fusion", args.fusion, FUSIONS)):
        if value not in valid:
            parser.error(f"argument {flag}: unknown {flag[2:]} {value!r}; valid names: "
                         f"{', '.join(valid)}")
    if args.arch in HUB_RETRIEVAL_ARCHS and args.task != "retrieval":
        parser.error(f"argument --arch: {args.arch} only with --task retrieval, got --task "
                     f"{args.task}")
    if args.task == "retrieval" and args.arch not in (None, *HUB_RETRIEVAL_ARCHS):
        parser.error(f"argument --arch: with --task retrieval choose "
                     f"{' or '.join(HUB_RETRIEVAL_ARCHS)} (or no --arch: notebook 07's CLIP), "
                     f"got {args.arch}")
    if args.arch is not None and args.arch not in HUB_RETRIEVAL_ARCHS \
            and args.task not in VLM_TASKS:
        parser.error(f"argument --arch: only with --task caption or vqa, got --task "
                     f"{args.task}")
    if args.task in NEW_TASKS:
        for flag, given in (("--strategy", args.strategy != "default"), ("--resume", args.resume),
                            ("--patience", args.patience is not None),
                            ("--test-size", args.test_size is not None)):
            if given:
                parser.error(f"argument {flag}: not available with --task {args.task} (it "
                             f"trains for set epochs and always scores the whole test split)")
    if args.arch in HUB_CAPTION_ARCHS and args.task != "caption":
        parser.error(f"argument --arch: {args.arch} only with --task caption, got --task "
                     f"{args.task}")
    if args.task in VLM_TASKS and args.epochs is not None \
            and args.arch not in HUB_CAPTION_ARCHS:
        steps = "CAPTION_EPOCHS" if args.task == "caption" else "VQA_EPOCHS"
        parser.error(f"argument --epochs: not available with --task {args.task} (it trains "
                     f"in four steps; see mmcourse.vlm.{steps})")
    if args.resume and args.run_dir is None:
        parser.error("argument --resume: needs --run-dir DIR, the folder of the interrupted run "
                     "(its backup is there)")
    if args.root is not None and not Path(args.root).is_dir():
        parser.error(f"argument --root: {args.root} is not a folder; give the data folder, or "
                     f"create one with `python -m mmcourse data --root {args.root}`")
    if args.run_dir is not None and Path(args.run_dir).exists() and \
            not Path(args.run_dir).is_dir():
        parser.error(f"argument --run-dir: {args.run_dir} is a file; give a folder (it is "
                     f"created if missing)")


def modality_train(parser: argparse.ArgumentParser, args) -> int:
    """``train --task retrieval --modality audio`` and ``train --task match --modality video
    --fusion temporal|average``, with ``--epochs``, ``--seed``, ``--json`` (notebook 13)."""
    task, fusions = MODALITY_TASKS[args.modality]
    if args.task != task:
        parser.error(f"argument --task: --modality {args.modality} trains --task {task}, got "
                     f"{args.task!r}")
    if fusions is None and args.fusion is not None:
        parser.error(f"argument --fusion: not used with --modality {args.modality}")
    if fusions is not None:
        args.fusion = args.fusion or fusions[0]
    if fusions is not None and args.fusion not in fusions:
        parser.error(f"argument --fusion: with --modality {args.modality} choose "
                     f"{' or '.join(fusions)}, got {args.fusion!r}")
    defaults = {"arch": None, "level": "attributes", "root": None, "strategy": "default",
                "resume": False, "run_dir": None, "patience": None, "batch_size": None,
                "train_size": None, "test_size": None, "data_dir": None, "save": None,
                "sequence_length": None}
    for name, default in defaults.items():
        if getattr(args, name) != default:
            parser.error(f"argument --{name.replace('_', '-')}: not used with --modality "
                         f"{args.modality} (it generates its clips in memory from --seed)")

    if args.modality == "audio":
        from mmcourse.train import clap as clap_training

        result = clap_training.train_clap(
            seed=args.seed, epochs=args.epochs or clap_training.CLAP_EPOCHS, log=log_to_stderr)
        summary = (f"audio->text recall@1 {result['recall_at_1']['audio_to_text']:.3f}, "
                   f"text->audio {result['recall_at_1']['text_to_audio']:.3f}, zero-shot "
                   f"{result['zero_shot_accuracy']:.3f}")
    else:
        from mmcourse.train import video as video_training

        result = video_training.train_video(
            args.fusion, seed=args.seed, epochs=args.epochs or video_training.VIDEO_EPOCHS,
            log=log_to_stderr)
        by_type = ", ".join(f"{k} {v:.3f}" for k, v in result["accuracy_by_type"].items())
        summary = f"test accuracy {result['test_accuracy']:.3f} ({by_type})"
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{summary}; trained in {result['train_seconds']:.1f} s")
    return 0


def train_data_dir(parser: argparse.ArgumentParser, args) -> int:
    """``train --data-dir FOLDER``: your own data (``mmcourse.apps.owndata``, notebook 09)."""
    _check_data_dir_arguments(parser, args)
    try:
        return train_own_folder(args)
    except OSError as error:  # --save on a full disk or a read-only folder
        print(file_system_error(error, "--save", args.save or error.filename), file=sys.stderr)
        return 1


def train_own_folder(args) -> int:
    """``python -m mmcourse train --data-dir FOLDER`` (``mmcourse.apps.owndata``): 0 on
    success, 1 on data problems, 2 on bad arguments. Introduced in notebook 09."""
    from mmcourse.apps import owndata
    from mmcourse.data.folders import DataError

    try:
        result = owndata.train_folder(args.data_dir, args.task, args.fusion, train_config(args),
                                      save=args.save, sequence_length=args.sequence_length)
    except DataError as error:
        print(f"error: --data-dir {args.data_dir}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        sizes = ", ".join(f"{name} {s['images']} images / {s['pairs']} pairs"
                          for name, s in result["split_sizes"].items())
        print(f"{result['task']}/{result['fusion']} on {result['data_dir']} ({result['pairs']}): "
              f"test accuracy {result['test_accuracy']:.4f}, {result['params']:,} parameters, "
              f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s")
        print(f"split by image: {sizes}; out-of-vocabulary rate {result['oov_rate']:.1%}")
    return 0
