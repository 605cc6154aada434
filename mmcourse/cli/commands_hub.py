"""The commands on real models (notebook 12): ``plan`` (memory and compute from a KerasHub
config), ``finetune`` (LoRA on your folder), ``caption`` and ``zero-shot`` (a preset on your
photos).

Each checks its flags, then calls ``mmcourse.hub.plan``, ``mmcourse.apps.finetune``,
``mmcourse.apps.photos`` or ``mmcourse.apps.zero_shot``; a preset that cannot be loaded
(offline with a real name) ends with what to do instead, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mmcourse.cli.commands_train import log_to_stderr


def plan(parser: argparse.ArgumentParser, args) -> int:
    """``plan MODEL [--context N] [--batch B] [--json]`` (``mmcourse.hub.plan``): 2 for a
    MODEL that cannot be read as a config (named), 1 for one that cannot be opened."""
    from mmcourse.hub import plan as planning

    try:
        result = planning.plan(args.model, context=args.context, batch=args.batch)
    except planning.PlanError as error:
        parser.error(f"argument MODEL: {error}")
    except OSError as error:  # a config.json that cannot be read (permissions)
        print(f"error: argument MODEL: cannot read {args.model} ({error.strerror or error})",
              file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else planning.format_plan(result))
    return 0


def finetune(parser: argparse.ArgumentParser, args) -> int:
    """``finetune --model PRESET_DIR --data-dir FOLDER --lora RANK --save OUT.lora.h5
    [--epochs N] [--json]`` (``mmcourse.apps.finetune``). FOLDER is never written."""
    _check_preset(parser, args.model)
    folder, save = Path(args.data_dir), Path(args.save)
    if not folder.is_dir():
        parser.error(f"argument --data-dir: {folder} is not a folder; give the folder that "
                     f"holds captions.csv and the images")
    if not save.name.endswith(".lora.h5") or save.is_dir():
        parser.error(f"argument --save: {save} should be a file name ending in .lora.h5")
    if save.resolve().is_relative_to(folder.resolve()):
        parser.error(f"argument --save: {save} is inside --data-dir {folder}; write the "
                     f"adapter elsewhere (your data folder is never written)")
    return adapt_preset(args)


def adapt_preset(args) -> int:
    """``finetune --model PRESET_DIR --data-dir FOLDER --lora RANK --save OUT [--epochs N]
    [--json]`` (``mmcourse.apps.finetune``): exit 1 for a folder with problems, a preset that
    cannot be loaded or a file that cannot be written."""
    from mmcourse.apps import finetune as finetuning
    from mmcourse.data.folders import DataError

    # the folder and --save are checked before the model loads and trains, so that a bad
    # one fails in seconds (the image size comes from the preset's config.json when it has one)
    size = finetuning.preset_image_size(args.model)
    data = None
    if size is not None:
        try:
            data = finetuning.load_caption_folder(args.data_dir, size)
        except DataError as error:
            print(f"error: argument --data-dir: {error}", file=sys.stderr)
            return 1
    existing = Path(args.save).absolute().parent  # the folders up to it are made on saving
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        print(f"error: --save {args.save}: cannot write under {existing}; choose a folder you "
              f"can write to", file=sys.stderr)
        return 1
    loaded, model = load_or_report(finetuning.load_with_adapter, args.model)
    if not loaded:
        return 1
    if data is None:
        try:
            data = finetuning.load_caption_folder(args.data_dir, int(model.backbone.image_size))
        except DataError as error:
            print(f"error: argument --data-dir: {error}", file=sys.stderr)
            return 1
    print(f"finetune: {len(data['train'][1])} training and {len(data['test'][1])} test "
          f"captions, LoRA rank {args.lora}, "
          f"{args.epochs or finetuning.FINETUNE_DEFAULTS['epochs']} epochs", file=sys.stderr)
    prompt = finetuning.prompt_for(data["train"][1])
    result = finetuning.finetune(model, data, args.lora, epochs=args.epochs, prompt=prompt,
                                 log=log_to_stderr)
    try:
        finetuning.save_adapter(model, args.save)
    except OSError as error:
        print(f"error: --save {args.save}: cannot write there ({error.strerror or error})",
              file=sys.stderr)
        return 1
    result.update(prompt=prompt, adapter=str(args.save),
                  adapter_bytes=Path(args.save).stat().st_size, model=str(args.model),
                  data_dir=str(args.data_dir))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"LoRA rank {args.lora}: {result['trainable_params']:,} of "
              f"{result['total_params']:,} parameters trained in "
              f"{result['train_seconds']:.1f} s; exact match {result['exact_match_before']:.3f} "
              f"-> {result['exact_match_after']:.3f} on {result['test_examples']} test "
              f"captions; adapter {args.save} ({result['adapter_bytes'] / 1e3:.0f} kB)")
    return 0


def _check_preset(parser: argparse.ArgumentParser, preset: str) -> None:
    """``--model``: a preset folder (with its config.json) or a KerasHub preset name."""
    model = Path(preset)
    if model.is_dir() and not (model / "config.json").is_file():
        parser.error(f"argument --model: {model} has no config.json; give a preset folder "
                     f"(written by save_preset) or a KerasHub preset name")
    if not model.is_dir() and ("/" in preset and "://" not in preset or model.suffix):
        parser.error(f"argument --model: {model} is not a folder; give a preset folder or a "
                     f"KerasHub preset name")


def _check_preset_and_images(parser: argparse.ArgumentParser, args) -> None:
    """``--model`` and ``--images`` of the commands on your photos (caption, zero-shot)."""
    _check_preset(parser, args.model)
    if not Path(args.images).is_dir():
        parser.error(f"argument --images: {args.images} is not a folder; give a folder of "
                     f"photos")


def load_or_report(load, preset) -> tuple[bool, object]:
    """``(True, load(preset))``, or ``(False, None)`` after printing why it failed as
    ``error: argument --model: ...`` on stderr: a folder that is not a preset, or a real
    preset name that could not be downloaded (``hub_presets.load_preset``'s message: a
    network, a local preset folder or a mirror). The commands on a preset share it."""
    try:
        return True, load(preset)
    except (OSError, ValueError) as error:  # FileNotFoundError, ConnectionError
        print(f"error: argument --model: {error}", file=sys.stderr)
        return False, None


def caption(parser: argparse.ArgumentParser, args) -> int:
    """``caption --model PRESET --images DIR [--prompt P] [--json]`` (``mmcourse.apps.photos``)."""
    _check_preset_and_images(parser, args)
    if not args.prompt.strip():
        parser.error("argument --prompt: must not be empty (e.g. 'caption en')")
    return caption_photos(args)




def caption_photos(args) -> int:
    """``caption --model PRESET --images DIR [--prompt P] [--json]`` (``mmcourse.apps.photos``):
    exit 1 when the preset cannot be loaded (offline with a real name: what to do instead) or
    a photo cannot be read."""
    from mmcourse.apps import finetune, photos

    loaded, model = load_or_report(finetune.load_with_adapter, args.model)
    if not loaded:
        return 1
    try:
        results = photos.caption_photos(model, args.images, args.prompt)
    except ValueError as error:  # ImageError is a ValueError
        print(f"error: argument --images: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"model": str(args.model), "prompt": args.prompt,
                          "captions": results}, ensure_ascii=False))
    else:
        for row in results:
            print(f"{row['image']}: {row['caption']}")
    return 0


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
    return sort_photos(args)


def sort_photos(args) -> int:
    """``zero-shot --model PRESET --images DIR --labels "a,b" [--template T ...] [--json]``
    (``mmcourse.apps.zero_shot``): exit 1 when the preset cannot be loaded (offline with a
    real name: what to do instead) or a photo cannot be read. ``zero_shot`` checked the
    labels and templates."""
    from mmcourse.apps import photos
    from mmcourse.apps import zero_shot as zero_shot_module

    labels = zero_shot_module.parse_labels(args.labels)
    templates = zero_shot_module.check_templates(
        args.template or zero_shot_module.DEFAULT_TEMPLATES)
    try:  # before the model loads (a real preset is a download): an empty folder fails now
        photos.photo_paths(args.images)
    except ValueError as error:
        print(f"error: argument --images: {error}", file=sys.stderr)
        return 1
    loaded, model = load_or_report(zero_shot_module.load_clip, args.model)
    if not loaded:
        return 1
    try:
        results = zero_shot_module.zero_shot_photos(model, args.images, labels, templates)
    except ValueError as error:  # ImageError is a ValueError
        print(f"error: argument --images: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"model": str(args.model), "labels": labels, "templates": templates,
                          "results": results}, ensure_ascii=False))
    else:
        print(zero_shot_module.format_table(labels, results))
    return 0
