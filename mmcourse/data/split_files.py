"""A folder of generated splits: ``{split}.npy`` (an array) and ``{split}.jsonl`` (its
records) for each split, beside ``manifest.json`` (the generator's settings and the sha256 of
each file). Written atomically, verified by hash and by regeneration, loaded back. Shared by
the audio and video generators (``audio_data``, ``video_data``; notebook 13)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np


def split_bytes(array: np.ndarray, records: list[dict]) -> tuple[bytes, bytes]:
    """The bytes of ``{split}.npy`` and ``{split}.jsonl`` (UTF-8, one record a line)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return buffer.getvalue(), lines.encode("utf-8")


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _names(split: str) -> tuple[str, str]:
    return f"{split}.npy", f"{split}.jsonl"


def write(folder: Path, splits, make, settings: dict) -> Path:
    """Write ``make(split)`` (an array and its records) for each split and a manifest of
    ``settings`` plus the files' hashes into ``folder``. Atomic: built in a hidden folder
    beside it, then renamed into place; an interrupted run leaves the previous folder or none."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        files = {}
        for split in splits:
            for name, content in zip(_names(split), split_bytes(*make(split)), strict=True):
                (partial / name).write_bytes(content)
                files[name] = {"sha256": digest(content)}
        manifest = {**settings, "files": files}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n",
                                               encoding="utf-8")
        previous = folder.parent / f".{folder.name}.previous-{uuid.uuid4().hex[:8]}"
        if folder.exists():
            os.replace(folder, previous)
        os.replace(partial, folder)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def verify(folder: Path, splits, maker, command: str) -> list[str]:
    """The problems of ``folder`` ([] when intact): a file missing, altered (its hash differs
    from the manifest) or not what the manifest's settings regenerate. ``maker(manifest)``
    returns ``make(split)``; it raises ValueError, KeyError, TypeError or AttributeError for a
    manifest it cannot use. ``command`` is the one that regenerates the folder."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files, make = manifest["files"], maker(manifest)
    except FileNotFoundError:
        return [f"missing: manifest.json in {folder} (run `{command}`)"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return ["altered: manifest.json (not a valid manifest)"]
    problems = []
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif digest(path.read_bytes()) != entry.get("sha256"):
            problems.append(f"altered: {name}")
    for split in splits:
        for name, content in zip(_names(split), split_bytes(*make(split)), strict=True):
            if files.get(name, {}).get("sha256") != digest(content):
                problems.append(f"not reproducible: {name} differs from what seed "
                                f"{manifest.get('seed')} generates")
    return problems


def report(folder: Path, problems: list[str], command: str) -> int:
    """Print ``verify``'s problems (stderr) or that all is well (stdout); the exit status."""
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{folder}: {len(problems)} problem(s); regenerate with `{command}`",
              file=sys.stderr)
        return 1
    print(f"{folder}: all files match manifest.json and regenerate from its seed")
    return 0


def load(folder: Path, split: str, splits, what: str, command: str):
    """The array and records of one split (``what`` names the data in the error)."""
    if split not in splits:
        raise ValueError(f"split must be one of {tuple(splits)}, got {split!r}")
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"no {what} data in {folder}: run `{command}`")
    array = np.load(folder / f"{split}.npy", allow_pickle=False)
    lines = (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return array, [json.loads(line) for line in lines]
