"""Command line: ``python -m mmcourse <command>`` (introduced in notebook 00).

Commands import their module only when they run, so ``doctor`` works even when
TensorFlow is missing or broken. With ``--json``, stdout carries JSON only and
logs go to stderr. A bad argument ends with exit status 2 and a message that names
the flag and what it expects; a file-system problem (read-only folder, disk full)
with exit status 1 and what to do; never with a traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from mmcourse import i18n
from mmcourse.i18n import _
from mmcourse.names import (
    CAPTION_ARCHS,
    FUSIONS,
    HUB_CAPTION_ARCHS,
    HUB_RETRIEVAL_ARCHS,
    MODEL_TASKS,
    NEW_TASKS,
    OBJECT_FUSIONS,
    VLM_TASKS,
)


def int_at_least(minimum: int):
    """An argparse ``type=``: a whole number >= ``minimum``; the message names the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"  # what argparse shows if it ever names the type
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse ``type=``: a number > 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") \
            from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def finite_float(bound: str):
    """An argparse ``type=``: a finite number ``>= 0`` or ``> 0`` (``bound``); the message
    names the bound."""
    holds = {">= 0": lambda value: value >= 0, "> 0": lambda value: value > 0}[bound]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}") \
                from None
        if not holds(value) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    parse.__name__ = f"number {bound}"
    return parse


def _add_preset_and_photos(command, family: str, example: str) -> None:
    """``--model`` and ``--images`` of the commands that run a preset on your photos."""
    command.add_argument("--model", required=True, metavar="PRESET",
                         help=f"a {family} preset folder or a KerasHub preset name such as "
                              f"{example} (downloaded once: needs a network or a mirror)")
    command.add_argument("--images", required=True, metavar="DIR",
                         help="a folder of photos (PNG, JPEG, ...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmcourse", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     title="commands")

    doctor = commands.add_parser("doctor", help="check the environment; exit 1 if broken")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    data = commands.add_parser("data", help="build or verify the course datasets")
    data.add_argument("--root", default=None, help="data folder (default: data/ in the repo)")
    data.add_argument("--seed", type=non_negative_int, default=0,
                      help="generator seed, an int >= 0 (default 0)")
    data.add_argument("--verify", action="store_true",
                      help="re-hash the data against its manifest; exit 1 on any difference")
    data.add_argument("--language", default="en", choices=["en", "zh"],
                      help="language of the texts: en (default) or zh, Chinese, written to "
                           "data/zh unless --root is given")
    data.add_argument("--modality", default="image", choices=list(DATA_MODALITIES),
                      help="image (default): the scenes; audio: clips of two sounds with "
                           "their captions in English and Chinese, written to data/audio; "
                           "video: clips of 8 frames with true and false statements about "
                           "their motion, written to data/video")
    data.add_argument("--sample-rate", type=positive_int, default=None, metavar="HZ",
                      help="with --modality audio: samples per second, 8000 to 48000 "
                           "(default 16000)")

    train = commands.add_parser("train", help="train and evaluate one model")
    train.add_argument("--task", default="match",
                       help="match, qa, retrieval (CLIP, notebook 07), caption (an image "
                            "captioner, notebook 08) or vqa (answers written by a "
                            "vision-language model, notebook 08); --fusion applies to match "
                            "and qa (default match)")
    train.add_argument("--fusion", default=None,
                       help="fusion method, match and qa only (default concat)")
    train.add_argument("--arch", default=None,
                       choices=(*CAPTION_ARCHS, *HUB_CAPTION_ARCHS, *HUB_RETRIEVAL_ARCHS),
                       help="with --task caption or vqa: llava (visual tokens as a prefix) "
                            "or flamingo (gated cross-attention) (default llava); with "
                            "--task caption also paligemma (KerasHub's tiny PaliGemma, "
                            "notebook 11); with --task retrieval keras_hub_clip (KerasHub's "
                            "CLIP with notebook 07's loss, notebook 11)")
    train.add_argument("--level", default="attributes", choices=["attributes", "relations"])
    train.add_argument("--modality", default="image", choices=list(TRAIN_MODALITIES),
                       help="image (default); audio: --task retrieval, the audio-text model; "
                            "video: --task match --fusion temporal|average")
    train.add_argument("--epochs", type=positive_int, default=None,
                       help="epochs, >= 1 (default per task)")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--root", default=None, help="data folder (default: data/ in the repo)")
    train.add_argument("--json", action="store_true", help="print the result as one JSON object")
    train.add_argument("--strategy", default="default",
                       choices=["default", "mirrored", "multiworker"],
                       help="tf.distribute strategy: mirrored = 2 logical CPUs or all GPUs, "
                            "multiworker = one process per machine, cluster in TF_CONFIG")
    train.add_argument("--run-dir", default=None,
                       help="folder for best.keras, model.keras and the resume backup")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from --run-dir's backup")
    train.add_argument("--patience", type=positive_int, default=None,
                       help="early stopping patience in epochs, >= 1 (restores the best weights)")
    train.add_argument("--batch-size", type=positive_int, default=None,
                       help="global batch size, split over the replicas (default 64)")
    train.add_argument("--train-size", type=positive_int, default=None,
                       help="use only the first N training examples (quick runs)")
    train.add_argument("--test-size", type=positive_int, default=None,
                       help="use only the first N validation and test examples")
    train.add_argument("--data-dir", default=None, metavar="FOLDER",
                       help="train on your own folder of images + captions.csv (match task); "
                            "nothing is written into it")
    train.add_argument("--save", default=None, metavar="MODEL.keras",
                       help="match or qa: save the model to this file with its vocabulary (and "
                            "answer words) inside, so it takes raw images and texts")
    train.add_argument("--sequence-length", type=positive_int, default=None,
                       help="with --data-dir: tokens per text (default: the longest caption)")

    predict = commands.add_parser(
        "predict", help="P(text matches image), or a qa model's answer, with a saved model")
    predict.add_argument("--model", required=True, metavar="MODEL",
                         help="a .keras file saved by train --save or train --data-dir --save, "
                              "or the SavedModel folder or a .tflite file written by export")
    predict.add_argument("--image", default=None, metavar="FILE", help="one image file")
    predict.add_argument("--text", default=None,
                         help="its text (a question for a qa model), in any language")
    predict.add_argument("--csv", default=None, metavar="FILE",
                         help="many pairs: a CSV with columns image,text (images relative to it)")
    predict.add_argument("--json", action="store_true", help="print JSON on stdout")
    predict.add_argument("--skip-bad", action="store_true",
                         help="with --csv: skip the rows with a problem (each reported) and "
                              "predict the others; without it a problem stops before predicting")
    predict.add_argument("--out", default=None, metavar="RESULTS.csv",
                         help="with --csv: also write the results (and the skipped rows) to "
                              "this CSV, UTF-8 with a BOM for Excel")

    export = commands.add_parser(
        "export", help="write a SavedModel that takes raw image bytes and texts (notebook 10)")
    export.add_argument("--model", required=True, metavar="MODEL.keras",
                        help="a match or qa model saved by train --save or train --data-dir "
                             "--save")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="a new (or empty) folder for the SavedModel")
    export.add_argument("--tflite", action="store_true",
                        help="also write TFLite files of the numeric core, float32 and int8")
    export.add_argument("--vocabulary", default=None, metavar="VOCAB.json",
                        help="for a model that takes token ids (e.g. train --run-dir's "
                             "model.keras): the vocab.json of its data, or that folder")
    export.add_argument("--json", action="store_true", help="print what was written as JSON")

    check = commands.add_parser(
        "check-data", help="check a folder of images + captions.csv; report every problem")
    check.add_argument("folder", metavar="FOLDER", help="the folder that holds captions.csv")
    check.add_argument("--json", action="store_true",
                       help="print the problems as one JSON object")
    check.add_argument("--lang", default=None, choices=i18n.LANGUAGES,
                       help="language of the report: en or zh (default: the locale's)")

    exercises = commands.add_parser(
        "exercises", help="for instructors: list the exercises, write teacher copies")
    exercises.add_argument("--list", action="store_true",
                           help="print every exercise, grouped by notebook")
    exercises.add_argument("--markdown", action="store_true", help="with --list: as Markdown")
    exercises.add_argument("--solutions", default=None, metavar="OUT_DIR",
                           help="write a copy of every notebook with the reference solutions "
                                "between '# BEGIN SOLUTION' and '# END SOLUTION' lines")
    exercises.add_argument("--sync", action="store_true",
                           help="regenerate the schedule and exercise list in docs/TEACHING.md "
                                "and notebooks/index.ipynb")

    grade = commands.add_parser(
        "grade", help="run submitted notebooks in exam mode and write grades.csv + feedback")
    grade.add_argument("submissions", metavar="SUBMISSIONS",
                       help="a folder of student folders, or of notebooks (one per student)")
    grade.add_argument("--out", default="grades.csv", metavar="FILE.csv",
                       help="the grades table (default grades.csv); feedback files go to "
                            "FILE_feedback/")
    grade.add_argument("--jobs", type=positive_int, default=1,
                       help="notebooks run at once, >= 1 (default 1)")
    grade.add_argument("--timeout", type=positive_float, default=300.0, metavar="S",
                       help="seconds one notebook may run, > 0 (default 300)")
    grade.add_argument("--lang", default=None, choices=i18n.LANGUAGES,
                       help="language of the messages and feedback: en or zh (default: the "
                            "locale's)")

    serve = commands.add_parser(
        "serve", help="serve a model over HTTP: TensorFlow Serving's REST API for an exported "
                      "folder, the OpenAI chat API for a captioner, embeddings and search for "
                      "CLIP (notebook 10)")
    serve.add_argument("--model", required=True, metavar="PATH",
                       help="a folder written by export, a captioner .keras (e.g. "
                            "docs/results/vlm_llava.keras), a KerasHub PaliGemma preset folder "
                            "(docs/results/tiny_paligemma_pretrained_attributes) or a CLIP "
                            ".keras (docs/results/clip_attributes.keras)")
    serve.add_argument("--name", default="mmcourse",
                       help="the model's name in the URLs and the 'model' field (default "
                            "mmcourse)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; any other "
                            "prints a warning, as there is no authentication)")
    serve.add_argument("--port", type=int_at_least(1), default=8501,
                       help="TCP port, 1-65535 (default 8501, TensorFlow Serving's REST port)")
    serve.add_argument("--max-batch", type=positive_int, default=32,
                       help="largest batch of instances or generations, >= 1 (default 32; 1 "
                            "turns batching off)")
    serve.add_argument("--batch-timeout-ms", type=finite_float(">= 0"), default=5.0, metavar="MS",
                       help="how long a batch waits for more requests, >= 0 ms (default 5)")
    serve.add_argument("--index", default=None, metavar="FOLDER",
                       help="CLIP only: a folder of images to search with /v1/search")
    serve.add_argument("--max-body-mb", type=finite_float("> 0"), default=8.0, metavar="MB",
                       help="largest request body in MB, > 0 (default 8)")
    serve.add_argument("--max-requests", type=positive_int, default=64,
                       help="requests in flight at most, >= 1; more get 503 (default 64)")

    plan = commands.add_parser(
        "plan", help="parameters, weight bytes, KV cache and image tokens of a KerasHub model "
                     "from its config, and whether it fits this machine (notebook 12)")
    plan.add_argument("model", metavar="MODEL",
                      help="a preset folder, a KerasHub config.json, or a built-in name: "
                           "clip_vit_base_patch32, clip_vit_large_patch14, "
                           "siglip_base_patch16_224, pali_gemma_3b_mix_224, gemma3_4b")
    plan.add_argument("--context", type=positive_int, default=2048, metavar="N",
                      help="tokens per sequence for the KV cache, >= 1 (default 2048)")
    plan.add_argument("--batch", type=positive_int, default=1, metavar="B",
                      help="sequences at once for the KV cache, >= 1 (default 1)")
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    finetune = commands.add_parser(
        "finetune", help="adapt a PaliGemma preset to a folder of images + captions with LoRA "
                         "and save only the adapter (notebook 12)")
    finetune.add_argument("--model", required=True, metavar="PRESET_DIR",
                          help="a PaliGemma preset folder (e.g. "
                               "docs/results/tiny_paligemma_attributes) or a KerasHub preset "
                               "name (downloaded, needs a network)")
    finetune.add_argument("--data-dir", required=True, metavar="FOLDER",
                          help="your folder of images + captions.csv (only read; split by "
                               "image into train and test)")
    finetune.add_argument("--lora", required=True, type=positive_int, metavar="RANK",
                          help="LoRA rank, >= 1")
    finetune.add_argument("--save", required=True, metavar="OUT.lora.h5",
                          help="where to write the adapter, a file ending in .lora.h5, "
                               "outside FOLDER")
    finetune.add_argument("--epochs", type=positive_int, default=None,
                          help="epochs, >= 1 (default 10)")
    finetune.add_argument("--json", action="store_true", help="print the result as JSON")
    caption = commands.add_parser(
        "caption", help="caption your own photos with a PaliGemma preset (notebook 12)")
    _add_preset_and_photos(caption, "PaliGemma", "pali_gemma_3b_mix_224")
    caption.add_argument("--prompt", default="caption en",
                         help="PaliGemma's task prompt (default 'caption en'; also 'caption "
                              "zh', 'describe en', ...)")
    caption.add_argument("--json", action="store_true", help="print the captions as JSON")
    # --- zero-shot (issue 22, notebook 12) ---
    zero_shot = commands.add_parser(
        "zero-shot", help="sort your own photos into labels with a CLIP preset, no training "
                          "(notebook 12)")
    _add_preset_and_photos(zero_shot, "CLIP", "clip_vit_base_patch32")
    zero_shot.add_argument("--labels", required=True, metavar='"cat,dog,..."',
                           help="two or more labels, separated by commas")
    zero_shot.add_argument("--template", action="append", default=None, metavar='"a photo of a {}"',
                           help="a caption with {} where the label goes; give it several times "
                                "to average them (prompt ensembling; default: 'a photo of a {}.', "
                                "'a picture of a {}.', 'a drawing of a {}.')")
    zero_shot.add_argument("--json", action="store_true",
                           help="print the probabilities as JSON")
    # --- end zero-shot ---

    bench = commands.add_parser("bench", help="run benchmarks and print measured ratios")
    bench.add_argument("names", nargs="*", metavar="NAME", help="benchmarks (default: all)")
    bench.add_argument("--json", action="store_true")
    return parser


def _check_data_arguments(parser: argparse.ArgumentParser, args) -> None:
    """``data --verify`` re-hashes the data as they are: a seed is not used, nor a language
    when --root names the folder (without --root, --language zh verifies data/zh)."""
    if args.verify and args.seed != 0:
        parser.error("argument --seed: not used with --verify (it re-hashes the data against "
                     "their manifest, whatever seed made them)")
    if args.verify and args.root is not None and args.language != "en":
        parser.error("argument --language: not used with --verify --root DIR (the manifest "
                     "in DIR says its language); without --root, --language zh verifies "
                     "data/zh")


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
    if args.fusion in OBJECT_FUSIONS:  # issue 25: the detector knows the course palette only
        parser.error(f"argument --fusion: {args.fusion} only with the course data (its "
                     f"detector knows the scenes' six colours), not with --data-dir")


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
                     f"in four steps; see mmcourse.train.vlm.{steps})")
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


DATA_MODALITIES = ("image", "audio", "video")


def modality_data(parser: argparse.ArgumentParser, args) -> int:
    """``data --modality audio|video [--sample-rate HZ]``: the generated clips of notebook
    13."""
    if args.language != "en":
        parser.error(f"argument --language: not with --modality {args.modality} (its records "
                     f"hold English and Chinese captions side by side)")
    if args.modality == "video":
        return _video_data(parser, args)
    from mmcourse.data import audio as audio_data

    sample_rate = audio_data.SAMPLE_RATE if args.sample_rate is None else args.sample_rate
    try:
        audio_data._check_sample_rate(sample_rate)
    except ValueError as error:
        parser.error(f"argument --sample-rate: {error}")
    root = args.root if args.root is not None else audio_data.DATA_DIR / audio_data.FOLDER
    if Path(root).exists() and not Path(root).is_dir():
        parser.error(f"argument --root: {root} is a file; give a folder (it is created if "
                     f"missing)")
    try:
        return audio_data.main(root, args.seed, args.verify, sample_rate)
    except OSError as error:
        print(file_system_error(error, "--root", root) + " (generation is atomic: the "
              "previous data, if any, is unchanged)", file=sys.stderr)
        return 1


def _video_data(parser: argparse.ArgumentParser, args) -> int:
    """``data --modality video``: the clips and match records of notebook 13."""
    from mmcourse.data import video as video_data

    if args.sample_rate is not None:
        parser.error("argument --sample-rate: only with --modality audio")
    root = args.root if args.root is not None else video_data.DATA_DIR / video_data.FOLDER
    if Path(root).exists() and not Path(root).is_dir():
        parser.error(f"argument --root: {root} is a file; give a folder (it is created if "
                     f"missing)")
    try:
        return video_data.main(root, args.seed, args.verify)
    except OSError as error:
        print(file_system_error(error, "--root", root) + " (generation is atomic: the "
              "previous data, if any, is unchanged)", file=sys.stderr)
        return 1


TRAIN_MODALITIES = ("image", "audio", "video")
#: For each modality: the one task it trains and the --fusion values it takes (None: none).
MODALITY_TASKS = {"audio": ("retrieval", None), "video": ("match", ("temporal", "average"))}


def modality_train(parser: argparse.ArgumentParser, args) -> int:
    """``train --task retrieval --modality audio`` and ``train --task match --modality video
    --fusion temporal|average``, with ``--epochs``, ``--seed``, ``--json`` (notebook 13)."""
    import json

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

    def log(message):
        print(message, file=sys.stderr, flush=True)

    if args.modality == "audio":
        from mmcourse.clip import clap

        result = clap.train_clap(seed=args.seed, epochs=args.epochs or clap.CLAP_EPOCHS,
                                 log=log)
        summary = (f"audio->text recall@1 {result['recall_at_1']['audio_to_text']:.3f}, "
                   f"text->audio {result['recall_at_1']['text_to_audio']:.3f}, zero-shot "
                   f"{result['zero_shot_accuracy']:.3f}")
    else:
        from mmcourse.clip import video

        result = video.train_video(args.fusion, seed=args.seed,
                                   epochs=args.epochs or video.VIDEO_EPOCHS, log=log)
        by_type = ", ".join(f"{k} {v:.3f}" for k, v in result["accuracy_by_type"].items())
        summary = f"test accuracy {result['test_accuracy']:.3f} ({by_type})"
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{summary}; trained in {result['train_seconds']:.1f} s")
    return 0


def file_system_error(error: OSError, flag: str, path) -> str:
    """A one-line message for an OSError met while reading or writing ``path``."""
    where = f"{flag} {path}" if flag else str(path)
    if error.errno == errno.ENOSPC:
        return (f"error: no space left on the device while writing {where}: free some space "
                f"or choose another folder{' with ' + flag if flag else ''}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"error: {where}: cannot write there ({error.strerror}); choose a folder you "
                f"can write to{' with ' + flag if flag else ''}")
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"error: {where}: a file is in the way, not a folder; give a folder"
    return f"error: {where}: {error.strerror or error} ({type(error).__name__})"


def train_data_dir(parser: argparse.ArgumentParser, args) -> int:
    """``train --data-dir FOLDER``: your own data (``mmcourse.apps.owndata``, notebook 09)."""
    _check_data_dir_arguments(parser, args)
    from mmcourse.apps import owndata

    try:
        return owndata.main_train(args)
    except OSError as error:  # --save on a full disk or a read-only folder
        print(file_system_error(error, "--save", args.save or error.filename), file=sys.stderr)
        return 1


def predict(parser: argparse.ArgumentParser, args) -> int:
    """``predict --model M (--image F --text T | --csv FILE [--skip-bad] [--out FILE])
    [--json]`` (notebook 09)."""
    if args.csv is None and (args.image is None or args.text is None):
        parser.error("argument --image/--text: give both --image FILE and --text TEXT, or "
                     "--csv FILE for many pairs")
    if args.csv is not None and (args.image is not None or args.text is not None):
        parser.error("argument --csv: give either --csv FILE or --image and --text, not both")
    for flag, value in (("--skip-bad", args.skip_bad), ("--out", args.out)):
        if value and args.csv is None:
            parser.error(f"argument {flag}: only with --csv FILE")
    if args.out is not None:
        out = Path(args.out)
        if out.is_dir() or out.suffix.lower() != ".csv":
            parser.error(f"argument --out: {out} should be a .csv file name")
        if not out.resolve().parent.is_dir():
            parser.error(f"argument --out: the folder {out.parent} does not exist")
    from mmcourse.apps import deploy

    return deploy.main_predict(args)


def export(parser: argparse.ArgumentParser, args) -> int:
    """``export --model M.keras --out DIR [--tflite] [--json]``: a SavedModel for raw inputs
    (``mmcourse.apps.deploy``, notebook 10). 2 for bad arguments, 1 for a bad model file."""
    import json

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} is a file; give a new folder")
    if out.is_dir() and any(out.iterdir()):
        parser.error(f"argument --out: {out} is not empty; give a new or empty folder (an "
                     f"export never overwrites files)")
    if Path(args.model).is_dir():
        parser.error(f"argument --model: {args.model} is a folder; export takes the .keras "
                     f"file saved by `python -m mmcourse train ... --save MODEL.keras`")
    if args.vocabulary is not None and not Path(args.vocabulary).exists():
        parser.error(f"argument --vocabulary: {args.vocabulary} not found; give the vocab.json "
                     f"of the data the model was trained on (e.g. data/vocab.json)")
    from mmcourse.apps import deploy

    try:
        report = deploy.export(args.model, out, tflite=args.tflite, vocabulary=args.vocabulary)
    except ValueError as error:
        print(f"error: --model {args.model}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(file_system_error(error, "--out", out), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        returns = "probability" if report["task"] == "match" else \
            "answer, probability and probabilities (signature 'answers' names the columns)"
        print(f"wrote the SavedModel {out} ({report['saved_model_bytes'] / 1e6:.1f} MB): "
              f"signature {deploy.SIGNATURE!r} takes image (encoded PNG/JPEG bytes) and text "
              f"(strings), returns {returns}")
        for kind in deploy.TFLITE_FILES if args.tflite else ():
            print(f"wrote {report[f'tflite_{kind}']} ({report[f'tflite_{kind}_bytes'] / 1e3:.0f} "
                  f"kB)")
        if args.tflite:
            print(report["tflite_note"])
    return 0


def check_data(args) -> int:
    """``check-data FOLDER [--json] [--lang zh]``: every problem of a folder at once
    (notebook 09), in English or Chinese (``mmcourse.i18n``). Exit 0 when there is none, 1
    when there are problems, 2 when FOLDER is not a folder."""
    with i18n.language(args.lang, from_locale=True):
        return _check_data(args)


def _check_data(args) -> int:
    import json
    import time

    from mmcourse.data import folders

    folder = Path(args.folder)
    if not folder.is_dir():
        print("error: argument FOLDER: " + _(
            "{folder} is not a folder; give the folder that holds {captions} and the images"
        ).format(folder=folder, captions=folders.CAPTIONS), file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        check = folders.check_folder(folder)
    except folders.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    from mmcourse.apps import owndata  # issue 28: shared captions, a test split too small

    warnings = owndata.folder_warnings(check.rows, check.captions.has_label,
                                       check.captions.has_group) if check.rows else []
    if args.json:
        print(json.dumps({"folder": str(folder), "ok": check.ok, "rows": len(check.rows),
                          "has_label": check.captions.has_label,
                          "has_group": check.captions.has_group,
                          "delimiter": check.captions.delimiter, "seconds": round(seconds, 3),
                          "problems": [vars(p) for p in check.problems],
                          "notes": check.captions.notes, "warnings": warnings},
                         ensure_ascii=False))
    else:
        print(check.report())  # stdout, so that `check-data FOLDER > report.txt` keeps it
        for warning in warnings:
            print(warning)
        if check.ok:
            labels = _("labels 0/1") if check.captions.has_label else (
                _("no label column: training pairs each image with another image's caption "
                  "as its negatives") + (_(", never one of its group")
                                         if check.captions.has_group else ""))
            verdict = (_("no problems, {count} warning(s)").format(count=len(warnings))
                       if warnings else _("all good"))
            print(_("{verdict} in {seconds:.1f} s: {labels}").format(
                verdict=verdict, seconds=seconds, labels=labels))
    return 0 if check.ok else 1


def exercises(parser: argparse.ArgumentParser, args) -> int:
    """``exercises --list [--markdown] | --solutions OUT_DIR | --sync`` (docs/TEACHING.md)."""
    if args.markdown and not args.list:
        parser.error("argument --markdown: only with --list")
    if not (args.list or args.solutions or args.sync):
        parser.error("argument --list/--solutions/--sync: give at least one of them")
    if args.solutions is not None and Path(args.solutions).exists() and \
            not Path(args.solutions).is_dir():
        parser.error(f"argument --solutions: {args.solutions} is a file; give a folder")
    from mmcourse.classroom import teaching

    try:
        return teaching.main(args)
    except ValueError as error:  # a starter cell that maps to no exercise, missing markers
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(file_system_error(error, "--solutions" if args.solutions else "",
                                args.solutions or error.filename), file=sys.stderr)
        return 1


def grade(parser: argparse.ArgumentParser, args) -> int:
    """``grade SUBMISSIONS [--out FILE] [--jobs N] [--timeout S]`` (mmcourse.classroom.grading)."""
    submissions, out = Path(args.submissions), Path(args.out)
    if not submissions.is_dir():
        parser.error(f"argument SUBMISSIONS: {submissions} is not a folder; give the folder "
                     f"of student folders or of notebooks")
    from mmcourse.classroom import grading

    if not grading.find_submissions(submissions):
        parser.error(f"argument SUBMISSIONS: no .ipynb notebooks in {submissions} or its "
                     f"subfolders")
    if out.is_dir() or out.suffix.lower() != ".csv":
        parser.error(f"argument --out: {out} should be a .csv file name")
    if out.resolve().is_relative_to(submissions.resolve()):
        parser.error(f"argument --out: {out} is inside SUBMISSIONS; write the grades elsewhere "
                     f"(the submissions are never written)")
    try:
        with i18n.language(args.lang, from_locale=True):
            grading.grade(submissions, out, jobs=args.jobs, timeout=args.timeout)
    except OSError as error:
        print(file_system_error(error, "--out", out), file=sys.stderr)
        return 1
    return 0


def serve(parser: argparse.ArgumentParser, args) -> int:
    """``serve --model PATH [...]``: a real HTTP server (``mmcourse.apps.serve``, notebook 10)."""
    if args.port > 65535:
        parser.error(f"argument --port: must be from 1 to 65535, got {args.port}")
    if not Path(args.model).exists():
        parser.error(f"argument --model: {args.model} not found; give a folder written by "
                     f"`python -m mmcourse export`, a PaliGemma preset folder, or a "
                     f"captioner or CLIP .keras file")
    if args.index is not None and not Path(args.index).is_dir():
        parser.error(f"argument --index: {args.index} is not a folder; give a folder of images")
    if not args.name or "/" in args.name or ":" in args.name:
        parser.error(f"argument --name: must be a non-empty name without '/' or ':', got "
                     f"{args.name!r}")
    from mmcourse.apps import serve as serving

    return serving.main(args)


def finetune(parser: argparse.ArgumentParser, args) -> int:
    """``finetune --model PRESET_DIR --data-dir FOLDER --lora RANK --save OUT.lora.h5
    [--epochs N] [--json]`` (``mmcourse.apps.finetune``). FOLDER is never written."""
    model, folder, save = Path(args.model), Path(args.data_dir), Path(args.save)
    if model.is_dir() and not (model / "config.json").is_file():
        parser.error(f"argument --model: {model} has no config.json; give a preset folder "
                     f"(written by save_preset) or a KerasHub preset name")
    if not model.is_dir() and ("/" in args.model and "://" not in args.model or model.suffix):
        parser.error(f"argument --model: {model} is not a folder; give a preset folder or a "
                     f"KerasHub preset name")
    if not folder.is_dir():
        parser.error(f"argument --data-dir: {folder} is not a folder; give the folder that "
                     f"holds captions.csv and the images")
    if not save.name.endswith(".lora.h5") or save.is_dir():
        parser.error(f"argument --save: {save} should be a file name ending in .lora.h5")
    if save.resolve().is_relative_to(folder.resolve()):
        parser.error(f"argument --save: {save} is inside --data-dir {folder}; write the "
                     f"adapter elsewhere (your data folder is never written)")
    from mmcourse.apps import finetune as finetuning

    return finetuning.main(args)


def _check_preset_and_images(parser: argparse.ArgumentParser, args) -> None:
    """``--model`` and ``--images`` of the commands on your photos (caption, zero-shot)."""
    model = Path(args.model)
    if model.is_dir() and not (model / "config.json").is_file():
        parser.error(f"argument --model: {model} has no config.json; give a preset folder "
                     f"(written by save_preset) or a KerasHub preset name")
    if not model.is_dir() and ("/" in args.model and "://" not in args.model or model.suffix):
        parser.error(f"argument --model: {model} is not a folder; give a preset folder or a "
                     f"KerasHub preset name")
    if not Path(args.images).is_dir():
        parser.error(f"argument --images: {args.images} is not a folder; give a folder of "
                     f"photos")


def caption(parser: argparse.ArgumentParser, args) -> int:
    """``caption --model PRESET --images DIR [--prompt P] [--json]`` (``mmcourse.apps.photos``)."""
    _check_preset_and_images(parser, args)
    if not args.prompt.strip():
        parser.error("argument --prompt: must not be empty (e.g. 'caption en')")
    from mmcourse.apps import photos

    return photos.main(args)


# --- zero-shot (issue 22, notebook 12) ---
def zero_shot(parser: argparse.ArgumentParser, args) -> int:
    """``zero-shot --model PRESET --images DIR --labels L [--template T ...] [--json]``
    (``mmcourse.apps.zero_shot``)."""
    _check_preset_and_images(parser, args)
    from mmcourse.apps import zero_shot as zero_shot_module

    for flag, check, value in (("--labels", zero_shot_module.parse_labels, args.labels),
                               ("--template", zero_shot_module.check_templates,
                                args.template or zero_shot_module.DEFAULT_TEMPLATES)):
        try:
            check(value)
        except ValueError as error:
            parser.error(f"argument {flag}: {error}")
    return zero_shot_module.main(args)
# --- end zero-shot ---


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: list them, one line each
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from mmcourse.cli import doctor

        return doctor.main(as_json=args.json)
    if args.command == "data" and args.modality != "image":  # issue 27 (notebook 13)
        return modality_data(parser, args)
    if args.command == "data" and args.sample_rate is not None:
        parser.error("argument --sample-rate: only with --modality audio")
    if args.command == "data":
        _check_data_arguments(parser, args)
        from mmcourse.data import scenes as data

        try:
            return data.main(root=args.root, seed=args.seed, verify=args.verify,
                             language=args.language)
        except OSError as error:  # read-only folder, disk full, ...
            print(file_system_error(error, "--root", args.root or data.DATA_DIR) +
                  " (generation is atomic: the previous dataset, if any, is unchanged)",
                  file=sys.stderr)
            return 1
    if args.command == "train" and args.modality != "image":  # issue 27 (notebook 13)
        return modality_train(parser, args)
    if args.command == "train":
        _check_train_arguments(parser, args)
        if args.data_dir is not None:
            return train_data_dir(parser, args)
        from mmcourse.train import tasks as training

        try:
            return training.main(args)
        except OSError as error:  # disk full, read-only run folder, ...
            flag, path = ("--run-dir", args.run_dir) if args.run_dir else (
                ("--save", args.save) if args.save else ("", error.filename))
            print(file_system_error(error, flag, path), file=sys.stderr)
            return 1
    if args.command == "check-data":
        return check_data(args)
    if args.command == "predict":
        return predict(parser, args)
    if args.command == "export":
        return export(parser, args)
    if args.command == "exercises":
        return exercises(parser, args)
    if args.command == "grade":
        return grade(parser, args)
    if args.command == "serve":
        return serve(parser, args)
    if args.command == "plan":  # issue 22 (notebook 12)
        from mmcourse.hub import plan

        try:
            return plan.main(args)
        except plan.PlanError as error:
            parser.error(f"argument MODEL: {error}")
    if args.command == "finetune":  # issue 22 (notebook 12)
        return finetune(parser, args)
    if args.command == "caption":  # issue 22 (notebook 12)
        return caption(parser, args)
    if args.command == "zero-shot":  # issue 22 (notebook 12)
        return zero_shot(parser, args)
    if args.command == "bench":
        from mmcourse import bench

        return bench.main(args.names, as_json=args.json)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
