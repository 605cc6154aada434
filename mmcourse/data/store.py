"""A dataset folder on disk, generated atomically and verified (``python -m mmcourse data
[--verify]``, notebook 01).

``generate`` builds everything in ``root/.partial-*`` and moves it in with ``manifest.json``
last, under a lock; ``ensure_data`` generates only when no current manifest is there;
``verify`` re-hashes every file against the manifest; ``main`` is the ``data`` command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from mmcourse.data import folders
from mmcourse.data.draw import IMAGE_SIZE
from mmcourse.data.folders import DataError
from mmcourse.data.grammar_zh import check_language
from mmcourse.data.scenes import (
    data_root,
    pixel_hash,
    read_image,
    split_sizes,
    write_levels,
)
from mmcourse.paths import DATA_DIR

#: Bumped whenever the generated files change; ``ensure_data`` regenerates older data.
DATA_VERSION = 2

_GENERATED = ("attributes", "relations", "vocab.json")  # plus manifest.json, written last
_KEEP = {"README.md", "samples", "manifest.json", ".lock", "zh", "audio", "video"}


# --- atomic generation, verification -------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path):
    """Hold an exclusive lock on root/.lock (one generation at a time per folder)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; generation stays atomic per process
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refuse_own_data(root: Path) -> None:
    """Never write the course data into a folder of the user's own data (issue 11)."""
    if (root / folders.CAPTIONS).is_file():
        raise DataError(f"{root} holds a {folders.CAPTIONS}: it is your own data, so the course "
                        f"dataset is not generated there. Train on it with `python -m mmcourse "
                        f"train --data-dir {root}`, or give the course data another folder")


def _remove_stale(root: Path) -> None:
    """Delete temporary folders that an interrupted generation left behind."""
    for stale in root.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(".previous-*"):
        shutil.rmtree(stale, ignore_errors=True)



def generate(root=None, seed: int = 0, progress: bool = True, sizes: dict | None = None,
             language: str = "en") -> Path:
    """Write both levels, all tasks and splits under ``root`` (default ``mmcourse.DATA_DIR``).

    Atomic: everything is built in ``root/.partial-*`` and then moved in, with
    ``manifest.json`` renamed in last; an interrupted run leaves the previous complete
    dataset, or no manifest (and ``ensure_data`` regenerates). ``sizes`` overrides the
    number of scenes, e.g. ``{"attributes": {"train": 20}}``. ``language="zh"`` writes the
    same scenes with Chinese texts (``manifest.json`` then says ``"language": "zh"``).
    Returns ``root``. Introduced in notebook 01.
    """
    check_language(language)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    sizes = split_sizes(sizes)  # before anything is created on disk
    root = data_root(root)
    _refuse_own_data(root)
    with _locked(root):
        _generate_locked(root, int(seed), progress, sizes, language)
    return root


def _generate_locked(root: Path, seed: int, progress: bool, sizes: dict,
                     language: str = "en") -> None:
    _remove_stale(root)
    partial = root / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        files = write_levels(partial, seed, sizes, progress, language)
        manifest = {"version": DATA_VERSION, "seed": seed, "image_size": IMAGE_SIZE,
                    "sizes": sizes, "files": dict(sorted(files.items()))}
        if language != "en":  # the English manifest stays byte for byte as it was
            manifest = {"version": DATA_VERSION, "language": language, **manifest}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n",
                                               encoding="utf-8")
        _commit(root, partial)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        for stale in root.glob(".previous-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _commit(root: Path, partial: Path) -> None:
    """Move the finished tree from ``partial`` into ``root``.

    First the old manifest is retired (from then on the folder holds "no dataset"), then
    the old folders move aside and the new ones in, and last the new manifest is renamed
    in: the single step that publishes the data. If interrupted, the old files go back.
    """
    previous = root / f".previous-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    previous.mkdir()
    retired, placed = [], []
    try:
        for name in ("manifest.json", *_GENERATED):
            if (root / name).exists():
                os.replace(root / name, previous / name)
                retired.append(name)
        for name in _GENERATED:
            os.replace(partial / name, root / name)
            placed.append(name)
        os.replace(partial / "manifest.json", root / "manifest.json")
    except BaseException:  # Ctrl-C included: roll back, old manifest last
        for name in placed:
            os.replace(root / name, partial / name)
        for name in sorted(retired, key=lambda n: n == "manifest.json"):
            os.replace(previous / name, root / name)
        raise


def read_manifest(root=None) -> dict:
    """The parsed manifest.json of a dataset folder. Introduced in notebook 01."""
    path = data_root(root) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))


def ensure_data(root=None) -> Path:
    """Generate the default datasets under ``root`` unless a current manifest is there.

    Notebooks and tests call this first. Returns ``root``. Introduced in notebook 01.
    """
    root = data_root(root)
    if _is_current(root):  # no lock needed to read: works on a read-only data folder too
        return root
    _refuse_own_data(root)
    language = "zh" if root == DATA_DIR / "zh" else "en"
    with contextlib.suppress(OSError, ValueError, AttributeError):  # an older dataset's
        vocab = json.loads((root / "vocab.json").read_text(encoding="utf-8"))
        language = vocab.get("language", "en")
    with _locked(root):
        if not _is_current(root):  # another process may have generated it meanwhile
            _generate_locked(root, 0, True, split_sizes(None), language)
    return root


def _is_current(root: Path) -> bool:
    try:
        return read_manifest(root).get("version") == DATA_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def verify(root=None) -> list[str]:
    """Re-hash every file against manifest.json; return the problems ([] when intact).

    Each problem names one file: ``missing: PATH``, ``extra: PATH``, ``altered: PATH``.
    Introduced in notebook 01.
    """
    root = data_root(root)
    try:
        manifest = read_manifest(root)
        expected = manifest["files"]
    except FileNotFoundError:
        return [f"missing: manifest.json in {root} (run `python -m mmcourse data`)"]
    except (ValueError, KeyError, TypeError):
        return ["altered: manifest.json (not a valid manifest)"]
    problems = []
    for name, entry in expected.items():
        path = root / name
        if not path.is_file():
            problems.append(f"missing: {name}")
            continue
        if "shape" in entry:
            try:
                digest = pixel_hash(read_image(path))
            except DataError:
                digest = None
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.get("sha256"):
            problems.append(f"altered: {name}")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        top = name.split("/")[0]
        if top in _KEEP or top.startswith(".") or path.is_dir() or name in expected:
            continue
        problems.append(f"extra: {name}")
    return problems
