"""A pretrained PaliGemma preset on your own photos: ``python -m mmcourse caption`` (notebook
12).

The same code runs a real preset (``pali_gemma_3b_mix_224``, downloaded once, with a
network or a mirror) and the course's tiny local preset. Photos are read from a folder by the
course's image contract (``images.decode_image``: RGB, EXIF orientation applied, resized to
the model's size); a file that cannot be read stops the run with its name and the reason.
"""

from __future__ import annotations

from pathlib import Path

from mmcourse.data import folders, images
from mmcourse.train import hub as hub_training


def photo_paths(folder) -> list[Path]:
    """The image files of ``folder`` (not its subfolders, by suffix), sorted by name;
    ``ValueError`` when there is none. Cheap: nothing is decoded, so a command can check
    its folder before it loads a model. Notebook 12."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in folders.IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder} holds no image files ({', '.join(folders.IMAGE_SUFFIXES)})")
    return paths


def read_photos(folder, size: int) -> tuple[list[str], list]:
    """``(names, photos)``: every image file of ``folder`` (not its subfolders), sorted by
    name, decoded to RGB uint8 (size, size, 3). ``ValueError`` for a folder without images,
    ``images.ImageError`` naming the first file that cannot be decoded. Notebook 12."""
    import numpy as np  # noqa: PLC0415

    paths = photo_paths(folder)
    photos = [images.decode_image(p.read_bytes(), p.name, size) for p in paths]
    return [p.name for p in paths], np.stack(photos)


def caption_photos(model, folder, prompt: str = "caption en\n") -> list[dict]:
    """``[{"image": name, "caption": text}]`` for each photo of ``folder`` (``read_photos``),
    captioned greedily by ``model``, a ``PaliGemmaCausalLM``, after ``prompt`` (PaliGemma's
    task prompts: "caption en", "caption zh", "describe en"...; a missing final newline is
    added). Notebook 12."""
    prompt = prompt if prompt.endswith("\n") else prompt + "\n"
    names, photos = read_photos(folder, int(model.backbone.image_size))
    captions = hub_training.generate_captions(model, photos, prompt)
    return [{"image": n, "caption": c} for n, c in zip(names, captions, strict=True)]
