"""The data commands: ``data`` (the generated scenes, sounds and clips) and ``check-data``
(your own folder). Introduced in notebooks 01 (data), 09 (check-data) and 13 (audio, video).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmcourse import i18n
from mmcourse.cli.arguments import file_system_error
from mmcourse.i18n import _
from mmcourse.paths import DATA_DIR


def data(parser: argparse.ArgumentParser, args) -> int:
    """``data [--root DIR] [--seed N] [--verify] [--language zh] [--modality audio|video]``."""
    if args.modality != "image":  # issue 27 (notebook 13)
        return modality_data(parser, args)
    if args.sample_rate is not None:
        parser.error("argument --sample-rate: only with --modality audio")
    _check_data_arguments(parser, args)
    try:
        return scenes_data(root=args.root, seed=args.seed, verify=args.verify,
                           language=args.language)
    except OSError as error:  # read-only folder, disk full, ...
        print(file_system_error(error, "--root", args.root or DATA_DIR) +
              " (generation is atomic: the previous dataset, if any, is unchanged)",
              file=sys.stderr)
        return 1


def scenes_data(root=None, seed: int = 0, verify: bool = False, language: str = "en") -> int:
    """``python -m mmcourse data [--root DIR] [--seed N] [--verify] [--language zh]``: build
    or verify (``mmcourse.data.scenes``). Chinese data goes to ``data/zh`` unless ``root`` is
    given.

    Returns the exit status: 0, 1 when ``--verify`` finds problems (each printed on
    stderr), 2 when ``root`` is not a folder. File-system errors (read-only folder, disk
    full) are raised as ``OSError``; ``data`` reports them. Introduced in notebook 01.
    """
    from mmcourse.data import grammar_zh, scenes, store

    if language not in grammar_zh.LANGUAGES:
        raise ValueError(f"language must be one of {grammar_zh.LANGUAGES}, got {language!r}")
    root = Path(root) if root is not None else DATA_DIR if language == "en" else DATA_DIR / "zh"
    for folder in (root, *root.parents):  # the first one that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                print(f"error: --root {root}: {folder} is a file, not a folder; give a folder "
                      f"(it is created if missing)", file=sys.stderr)
                return 2
            break
    if verify:
        problems = store.verify(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{root}: {len(problems)} problem(s); regenerate with "
                  f"`python -m mmcourse data --root {root}`", file=sys.stderr)
            return 1
        count = len(store.read_manifest(root)["files"])
        print(f"{root}: all {count} files match manifest.json")
        return 0
    store.generate(root, seed=seed, language=language)
    manifest = store.read_manifest(root)
    for level, splits in manifest["sizes"].items():
        sizes = ", ".join(f"{split} {n}" for split, n in splits.items())
        print(f"{level}: scenes {sizes} (per scene: "
              f"{2 * scenes.MATCH_PAIRS_PER_SCENE[level]} match records, "
              f"{scenes.QA_PER_SCENE[level]} qa)")
    print(f"wrote {len(manifest['files'])} files under {root}")
    return 0


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
        audio_data.check_sample_rate(sample_rate)
    except ValueError as error:
        parser.error(f"argument --sample-rate: {error}")
    root = args.root if args.root is not None else audio_data.DATA_DIR / audio_data.FOLDER
    if Path(root).exists() and not Path(root).is_dir():
        parser.error(f"argument --root: {root} is a file; give a folder (it is created if "
                     f"missing)")
    try:
        return audio_clips(root, args.seed, args.verify, sample_rate)
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
        return video_clips(root, args.seed, args.verify)
    except OSError as error:
        print(file_system_error(error, "--root", root) + " (generation is atomic: the "
              "previous data, if any, is unchanged)", file=sys.stderr)
        return 1


def audio_clips(root, seed: int = 0, verify: bool = False,
                sample_rate: int | None = None) -> int:
    """``python -m mmcourse data --modality audio [--root DIR] [--seed N] [--verify]
    [--sample-rate HZ]`` (``mmcourse.data.audio``). Returns the exit status (1 when
    ``--verify`` finds problems). Introduced in notebook 13."""
    from mmcourse.data import audio, split_files

    folder = Path(root)
    if verify:
        return split_files.report(folder, audio.verify(folder), audio.COMMAND)
    sample_rate = audio.SAMPLE_RATE if sample_rate is None else sample_rate
    audio.generate(folder, seed, sample_rate)
    sizes = ", ".join(f"{split} {len(audio.PAIRS) * n}"
                      for split, n in audio.CLIPS_PER_PAIR.items())
    print(f"audio: clips {sizes} ({len(audio.PAIRS)} ordered pairs of {len(audio.EVENTS)} "
          f"events, {sample_rate} Hz, {audio.CLIP_SECONDS:g} s)")
    print(f"wrote {len(audio.SPLITS) * 2 + 1} files under {folder}")
    return 0


def video_clips(root, seed: int = 0, verify: bool = False) -> int:
    """``python -m mmcourse data --modality video [--root DIR] [--seed N] [--verify]``
    (``mmcourse.data.video``). Returns the exit status (1 when ``--verify`` finds problems).
    Introduced in notebook 13."""
    from mmcourse.data import split_files, video

    folder = Path(root)
    if verify:
        return split_files.report(folder, video.verify(folder), video.COMMAND)
    video.generate(folder, seed)
    sizes = ", ".join(f"{split} {n}" for split, n in video.CLIPS.items())
    print(f"video: clips {sizes} ({video.FRAMES} frames of {video.FRAME_SIZE} x "
          f"{video.FRAME_SIZE}), each with a true and a false statement")
    print(f"wrote {len(video.SPLITS) * 2 + 1} files under {folder}")
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
