"""``python -m mmcourse caption`` on the tiny PaliGemma preset, and offline with a real preset
name (mmcourse.apps.photos, notebook 12)."""

import json

import cv2
import keras_hub
import pytest
import requests

from mmcourse import REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.apps import finetune, photos
from mmcourse.data import draw
from mmcourse.data import scenes as data

TINY_PRESET = REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    scene_images, captions, _ = data.load_arrays("retrieval", "attributes", "test")
    for index, name in enumerate(["b.png", "a.jpg", "c.PNG"]):
        image = cv2.resize(scene_images[index], (128, 96))  # not square, not the model's size
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_caption_command_captions_each_photo_in_name_order(photo_folder, capsys):
    assert main(["caption", "--model", str(TINY_PRESET), "--images", str(photo_folder),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["image"] for row in result["captions"]] == ["a.jpg", "b.png", "c.PNG"]
    # the same captions as the model gives the same pixels directly
    model = finetune.load_with_adapter(TINY_PRESET)
    names, pixels = photos.read_photos(photo_folder, 64)
    direct = finetune.hub_training.generate_captions(model, pixels, "caption en\n")
    assert [row["caption"] for row in result["captions"]] == direct
    # a tiny model trained on the course's shapes: its captions use the course's words
    words = {w for c in direct for w in c.split()}
    assert words <= {"a", "small", "large", *draw.COLOURS, *draw.SHAPES}, words


def test_bad_photo_is_named(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert main(["caption", "--model", str(TINY_PRESET), "--images", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "argument --images" in err and "broken.png" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["caption", "--model", str(TINY_PRESET), "--images", str(empty)]) == 1
    assert "holds no image files" in capsys.readouterr().err


def test_real_preset_offline_says_what_to_do(photo_folder, monkeypatch, capsys):
    def offline(*args, **kwargs):  # what KerasHub raises without a network
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.PaliGemmaCausalLM, "from_preset", offline)
    assert main(["caption", "--model", "pali_gemma_3b_mix_224", "--images",
                 str(photo_folder)]) == 1
    err = capsys.readouterr().err
    for needle in ("argument --model", "about 5.9 GB", "modelscope://", "HF_ENDPOINT",
                   "tiny presets need no network"):
        assert needle in err, err
