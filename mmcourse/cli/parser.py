"""The command line's parser: every command and flag of ``python -m mmcourse`` (notebook 00).

``build_parser`` only declares; the checks that need more than argparse (files, flag
combinations) live beside each command's body in ``cli.commands_*``.
"""

from __future__ import annotations

import argparse

from mmcourse import i18n
from mmcourse.cli.arguments import (
    finite_float,
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
)
from mmcourse.names import CAPTION_ARCHS, HUB_CAPTION_ARCHS, HUB_RETRIEVAL_ARCHS

DESCRIPTION = "Command line: ``python -m mmcourse <command>`` (introduced in notebook 00)."
DATA_MODALITIES = ("image", "audio", "video")
TRAIN_MODALITIES = ("image", "audio", "video")


def _add_preset_and_photos(command, family: str, example: str) -> None:
    """``--model`` and ``--images`` of the commands that run a preset on your photos."""
    command.add_argument("--model", required=True, metavar="PRESET",
                         help=f"a {family} preset folder or a KerasHub preset name such as "
                              f"{example} (downloaded once: needs a network or a mirror)")
    command.add_argument("--images", required=True, metavar="DIR",
                         help="a folder of photos (PNG, JPEG, ...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmcourse", description=DESCRIPTION)
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
